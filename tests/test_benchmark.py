"""The benchmark: both sides run, on the same noise; DDIM-50 on our side reproduces the reference."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from brainsynth.evaluation.benchmark import benchmark, format_report


def test_ddim50_side_equals_the_reference_loop(trained_model):
    report = benchmark(str(trained_model), device="cpu", steps=50, scheduler="ddim", runs=1)
    assert report["difference_to_ddim50"]["max_abs"] < 1e-5
    for side in ("reference", "brainsynth"):  # numbers are the benchmark's output; the test checks their form
        assert {"median_seconds", "peak_memory_mb"} <= set(report[side])
        assert all(math.isfinite(report[side][key]) for key in ("median_seconds", "peak_memory_mb"))
    assert math.isfinite(report["speedup"])
    assert "speed-up" in format_report(report)


def test_benchmark_command_writes_json(trained_model, tmp_path):
    out = tmp_path / "bench.json"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "brainsynth",
            "benchmark",
            "--model",
            str(trained_model),
            "--scheduler",
            "dpm-solver++",
            "--steps",
            "10",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert "dpm-solver++ 10 steps" in process.stdout
    assert out.read_text().startswith("{")


def test_batched_split_side_still_equals_the_reference(trained_model):
    report = benchmark(
        str(trained_model), device="cpu", steps=50, scheduler="ddim", runs=1, batch_size=2, decoding="split"
    )
    assert report["brainsynth"]["method"] == "ddim 50 steps (batch 2, split decoding)"
    assert report["difference_to_ddim50"]["max_abs"] < 1e-4
    assert math.isfinite(report["brainsynth"]["brains_per_second"])


def test_solver_sweep_measures_quality_against_ddim50(trained_model, tmp_path):
    out = tmp_path / "sweep.json"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "brainsynth",
            "benchmark",
            "--model",
            str(trained_model),
            "--sweep",
            "ddim:50,5;dpm-solver++:5",
            "--precision",
            "bfloat16",
            "--runs",
            "2",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    rows = json.loads(out.read_text())["sweep"]
    assert [(r["scheduler"], r["steps"]) for r in rows] == [("ddim", 50), ("ddim", 5), ("dpm-solver++", 5)]
    assert rows[0]["latent_mean_abs"] == 0.0  # DDIM-50 against itself: the reference is in the same precision
    assert {r["precision"] for r in rows} == {"bfloat16"}
    assert rows[1]["psnr_db"] < rows[0]["psnr_db"]
    assert "dpm-solver++" in process.stdout


def test_bad_sweep_is_refused_before_loading():
    process = subprocess.run(
        [sys.executable, "-m", "brainsynth", "benchmark", "--model", "nowhere", "--sweep", "euler:10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1
    assert "--sweep must look like" in process.stderr


def test_compile_mode_is_named_in_the_method_and_checked_by_the_command():
    from brainsynth.cli.parser import build_parser
    from brainsynth.evaluation.benchmark import _method

    assert (
        _method("ddim", 20, 1, "bfloat16", "auto", "reduce-overhead")
        == "ddim 20 steps (bfloat16, compiled (reduce-overhead))"
    )
    assert _method("ddim", 20, 8, "float32", "auto", True) == "ddim 20 steps (batch 8, compiled)"
    parser = build_parser()
    assert parser.parse_args(["benchmark", "--compile"]).compile == "default"
    assert parser.parse_args(["benchmark", "--compile", "reduce-overhead"]).compile == "reduce-overhead"
    assert parser.parse_args(["benchmark"]).compile is False
    process = subprocess.run(
        [sys.executable, "-m", "brainsynth", "benchmark", "--compile", "fastest"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert "--compile: invalid choice: 'fastest'" in process.stderr


@pytest.mark.parametrize("platform", ["macos", "windows"])
def test_peak_memory_is_read_on_other_platforms(monkeypatch, block_import, platform):
    """No /proc there; Windows has no resource module either (psutil's peak working set instead)."""
    import resource
    from pathlib import Path

    import torch

    from brainsynth.evaluation import benchmark

    monkeypatch.setattr(benchmark, "PROC_STATUS", Path("/nonexistent/status"))
    if platform == "windows":
        block_import("resource")
    else:
        monkeypatch.setattr(benchmark.sys, "platform", "darwin")
    megabytes, kind = benchmark._peak(torch.device("cpu"))
    assert kind == ("peak working set" if platform == "windows" else "peak RSS")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if platform == "macos":
        assert megabytes == pytest.approx(rss_kib / 2**20, rel=0.05)  # read as bytes, as macOS reports them
    else:
        assert 1 < megabytes < 2 * rss_kib / 1024
