"""Measure brainsynth on a CUDA GPU: the numbers of the README's GPU table, and checks of the GPU paths.

Usage::

    python recipes/measure/gpu.py OUTPUT_DIR [--cohort DIR]

1. The machine: GPU, driver, PyTorch, CUDA, cuDNN and the known low-precision faults of that cuDNN.
2. The published architecture with random weights (timing and numerical agreement only): the bundle's
   reference loop (DDIM 50, float32) once, then brainsynth's variants, each in its own process (its own
   peak memory): the same settings, bfloat16, float16, fewer steps, batches and torch.compile. Each
   variant: seconds per brain (median of the runs; the first run pays cuDNN's autotuning or the
   compilation and is reported apart), brains per second, CUDA peak memory, and the difference of its
   first brain to the reference brain.
3. Split against full decoding on the GPU (float32 and bfloat16): the largest difference and each peak.
4. The demo model (trained weights): reference loop against brainsynth's defaults and a batch.
5. With ``--cohort``: a short ``torchrun`` training of the ``tiny`` preset on the GPU (NCCL), both stages.

Writes ``gpu.json`` into OUTPUT_DIR and prints a markdown table. Each step has a time limit, so one
slow variant cannot stop the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from brainsynth.devices import low_precision_issues
from brainsynth.evaluation.benchmark import run_side_in_subprocess
from brainsynth.evaluation.metrics import psnr, ssim

#: (label, model, random weights, overrides of brainsynth's side, runs, time limit in s)
VARIANTS = [
    ("ukb: DDIM 50, float32 (same settings as the reference)", "ukb", True, {}, 3, 240),
    ("ukb: DDIM 20, bfloat16", "ukb", True, {"steps": 20, "precision": "bfloat16"}, 4, 150),
    ("ukb: DDIM 20, bfloat16, batch 8", "ukb", True, {"steps": 20, "precision": "bfloat16", "batch_size": 8}, 3, 200),
    ("demo: defaults (DDIM 20, float32)", "demo", False, {}, 4, 120),
    ("demo: defaults, bfloat16, batch 32", "demo", False, {"precision": "bfloat16", "batch_size": 32}, 3, 120),
    ("ukb: DDIM 20, float16", "ukb", True, {"steps": 20, "precision": "float16"}, 4, 150),
    ("ukb: DDIM 50, bfloat16", "ukb", True, {"precision": "bfloat16"}, 3, 180),
    ("ukb: DDIM 20, bfloat16, batch 16", "ukb", True, {"steps": 20, "precision": "bfloat16", "batch_size": 16}, 2, 240),
    (
        "ukb: DDIM 20, bfloat16, batch 8, compiled",
        "ukb",
        True,
        {"steps": 20, "precision": "bfloat16", "batch_size": 8, "compile": True},
        3,
        300,
    ),
    (
        "ukb: DDIM 20, bfloat16, compiled with CUDA graphs",
        "ukb",
        True,
        {"steps": 20, "precision": "bfloat16", "compile": "reduce-overhead"},
        4,
        200,
    ),
]


def machine() -> dict:
    """What the measurements ran on."""
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "gpu": torch.cuda.get_device_name(),
        "nvidia_smi": smi,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cpu_count": os.cpu_count(),
        "known_issues": {p: low_precision_issues(p) for p in ("bfloat16", "float16")},
    }


def spec_for(
    side: str, model: str, random_weights: bool, overrides: dict, runs: int, folder: Path, device: str = "cuda"
) -> dict:
    from brainsynth.loading.names import load_model
    from brainsynth.loading.presets import ukb_config

    config = ukb_config() if random_weights else load_model(model).config  # no random initialisation here
    spec = {
        "side": side,
        "model": model,
        "random_weights": random_weights,
        "device": device,
        "steps": config.default_steps,
        "scheduler": config.default_scheduler,
        "runs": runs,
        "seed": 0,
        "batch_size": 1,
        "precision": "float32",
        "decoding": "auto",
        "compile": False,
        "weight_dtype": "float32",
        "volume_path": str(folder / f"{side}-{model}-{time.monotonic_ns()}.npy"),
    }
    if side == "brainsynth":
        spec.update(overrides)
    return spec


def measure(spec: dict, limit: float) -> dict:
    """One side in its own process; the first run's time apart from the median of the others."""
    started = time.perf_counter()
    try:
        measured = run_side_in_subprocess(spec, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {limit} s"}
    except Exception as error:  # the report says what failed and goes on
        return {"error": str(error)}
    seconds = measured["seconds"]
    steady = seconds[1:] or seconds
    batch = spec.get("batch_size", 1)
    return {
        "seconds_per_brain_runs": seconds,
        "first_run_seconds_per_brain": seconds[0],
        "seconds_per_brain": statistics.median(steady),
        "brains_per_second": 1.0 / statistics.median(steady),
        "peak_memory_mb": measured["peak_memory_mb"],
        "batch_size": batch,
        "process_seconds": time.perf_counter() - started,
    }


def compare(reference_path: str, path: str) -> dict:
    a, b = np.load(reference_path), np.load(path)
    clipped = np.clip(a, 0, 1), np.clip(b, 0, 1)
    return {
        "max_abs": float(np.abs(a - b).max()),
        "mean_abs": float(np.abs(a - b).mean()),
        "psnr_db": psnr(*clipped),
        "ssim": ssim(*clipped),
    }


def decoding_check() -> dict:
    """Split against full decoding of one published-size latent on the GPU."""
    from brainsynth.evaluation.benchmark import load_benchmark_model

    model = load_benchmark_model("ukb", True).to(torch.device("cuda"))
    generator = torch.Generator().manual_seed(1)
    latent = torch.randn((1, *model.config.latent_shape), generator=generator).cuda()
    report = {}
    for precision in ("float32", "bfloat16"):
        volumes, peaks, seconds = {}, {}, {}
        for mode in ("full", "split"):
            model.decoding = mode
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            with torch.no_grad():
                volumes[mode] = model.decode(latent, precision=precision)
                peaks[mode] = (torch.cuda.max_memory_allocated() - base) / 2**20
                torch.cuda.synchronize()
                started = time.perf_counter()
                model.decode(latent, precision=precision)
                torch.cuda.synchronize()
                seconds[mode] = time.perf_counter() - started
        report[precision] = {
            "max_abs_difference": float(np.abs(volumes["full"] - volumes["split"]).max()),
            "full_peak_mb": peaks["full"],
            "split_peak_mb": peaks["split"],
            "full_seconds": seconds["full"],
            "split_seconds": seconds["split"],
        }
    model.decoding = "auto"
    from brainsynth.sampling.decoding import choose_decoding

    report["auto_chooses"] = choose_decoding(model.autoencoder, tuple(latent.shape[1:]), latent.device, "auto")[0]
    return report


def training_check(cohort: Path, folder: Path) -> dict:
    """Both training stages of the tiny preset through torchrun on the GPU."""
    report = {}
    runs = {"autoencoder": folder / "ae", "diffusion": folder / "ldm"}
    for stage, output in runs.items():
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "1",
            "-m",
            "brainsynth",
            "train",
            stage,
            "--data",
            str(cohort),
            "--config",
            "tiny",
            "--output",
            str(output),
            "--device",
            "cuda",
            "--quiet",
        ]
        if stage == "diffusion":
            command += ["--autoencoder", str(runs["autoencoder"])]
        started = time.perf_counter()
        process = subprocess.run(command, capture_output=True, text=True, timeout=120)
        report[stage] = {
            "returncode": process.returncode,
            "seconds": time.perf_counter() - started,
            "tail": (process.stdout + process.stderr)[-1500:],
        }
    return report


def table(results: list[dict]) -> str:
    lines = [
        "| variant | s per brain | first run | brains/s | peak GB | vs reference: max abs / PSNR dB / SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for row in results:
        if "error" in row:
            lines.append(f"| {row['label']} | failed: {row['error'][:120]} | | | | |")
            continue
        diff = row.get("difference_to_reference")
        quality = f"{diff['max_abs']:.4f} / {diff['psnr_db']:.1f} / {diff['ssim']:.4f}" if diff else "(reference)"
        lines.append(
            f"| {row['label']} | {row['seconds_per_brain']:.3f} | {row['first_run_seconds_per_brain']:.3f} "
            f"| {row['brains_per_second']:.2f} | {row['peak_memory_mb'] / 1024:.1f} | {quality} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--cohort", type=Path, help="tiny cohort (8 mm) for the torchrun training check")
    parser.add_argument("--only", help="comma-separated parts: sampling,decoding,training (default all)")
    parser.add_argument("--models", default="ukb,demo", help="models of the sampling part (default ukb,demo)")
    parser.add_argument("--match", default="", help="only the sampling variants whose label contains this")
    parser.add_argument("--device", default="cuda", help="default cuda; cpu for a dry run of the sampling part")
    args = parser.parse_args()
    parts = set((args.only or "sampling,decoding,training").split(","))
    models = set(args.models.split(","))
    args.output.mkdir(parents=True, exist_ok=True)
    report: dict = {"machine": machine() if args.device != "cpu" else {"device": "cpu"}}
    print(json.dumps(report["machine"], indent=1), flush=True)
    out = args.output / "gpu.json"

    def save() -> None:
        out.write_text(json.dumps(report, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "decoding" in parts:
            report["decoding"] = decoding_check()
            print(json.dumps(report["decoding"], indent=1), flush=True)
            save()
        if "training" in parts and args.cohort:
            report["training"] = training_check(args.cohort, folder)
            print(json.dumps(report["training"], indent=1), flush=True)
            save()
        if "sampling" in parts:
            results, references = [], {}
            for label, model, random_weights, overrides, runs, limit in VARIANTS:
                if model not in models or args.match not in label:
                    continue
                if model not in references:
                    spec = spec_for("reference", model, random_weights, {}, 3, folder, args.device)
                    row = {"label": f"{model}: reference loop (bundle, DDIM 50, float32)", **measure(spec, 300)}
                    references[model] = spec["volume_path"]
                    results.append(row)
                    print(row, flush=True)
                spec = spec_for("brainsynth", model, random_weights, overrides, runs, folder, args.device)
                row = {"label": label, **measure(spec, limit)}
                if "error" not in row:
                    row["difference_to_reference"] = compare(references[model], spec["volume_path"])
                results.append(row)
                print(row, flush=True)
                report["sampling"] = results
                save()
            print(table(results), flush=True)


if __name__ == "__main__":
    main()
