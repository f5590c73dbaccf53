"""Where the demo model's time goes on this CPU in float32, what is measured to help, and the speed table.

    python recipes/measure/cpu_speed.py [--runs 3] [--compile] [--json OUT]

In one process on one machine: the CPU's kind (AVX2, AVX-512, native bfloat16), its measured float32
matrix-multiply peak (GFLOP/s), the FLOPs of one U-Net step and of one decode (torch's FLOP counter),
the seconds of each (the U-Net from the slope of sampling time over step counts, the decode alone),
channels-last 3D memory format and, with ``--compile``, ``torch.compile`` on the CPU; then the fast
solvers' distance to DDIM-50 in float32 on the same noise, and the bundle's reference loop against
brainsynth's defaults and the candidate defaults (each side in its own process, as ``brainsynth
benchmark`` runs them), with achieved GFLOP/s against the peak.

To measure as on a CPU without AVX-512 (most laptops: AVX2 only) on one that has it, limit the kernels
to AVX2; the report records the limits, and ``precision="auto"`` then chooses float32 as it would there:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python recipes/measure/cpu_speed.py --runs 3 --json demo-cpu-speed-avx2.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import brainsynth
from brainsynth.devices import cpu_has_native_bfloat16
from brainsynth.evaluation.benchmark import benchmark, solver_sweep

ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
CANDIDATES = [("ddim", 20), ("dpm-solver++", 8), ("dpm-solver++", 10), ("unipc", 8), ("unipc", 10)]


def cpu_kind() -> dict[str, object]:
    """The CPU's name and the vector units that decide float32 and bfloat16 speed."""
    flags: set[str] = set()
    name = "CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name"):
            name = line.split(":", 1)[1].strip()
    return {
        "name": name,
        "threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **{flag: flag in flags for flag in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")},
        # Kernels limited to fewer instructions than the CPU has, to measure like a CPU without them:
        "limits": {name: os.environ[name] for name in ISA_LIMITS if name in os.environ},
        "native_bfloat16": cpu_has_native_bfloat16(),
    }


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Best float32 GFLOP/s of an n x n matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def flops_of(call) -> float:
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops() / 1e9


def median_seconds(call, runs: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def breakdown(model, runs: int, label: str) -> dict[str, float]:
    """Seconds per U-Net step (slope over step counts), per decode, and the rest of a DDIM-20 brain."""
    short = median_seconds(lambda: model.sample(seed=0, steps=5, scheduler="ddim", precision="float32"), runs)
    long = median_seconds(lambda: model.sample(seed=0, steps=20, scheduler="ddim", precision="float32"), runs)
    latent = torch.randn(1, *model.config.latent_shape)
    with torch.no_grad():
        decode = median_seconds(lambda: model.autoencoder.decode(latent), runs)
    step = (long - short) / 15
    return {
        "label": label,
        "unet_step_s": step,
        "decode_s": decode,
        "rest_s": long - 20 * step - decode,
        "ddim20_s": long,
    }


def channels_last(model) -> None:
    model.unet.to(memory_format=torch.channels_last_3d)
    model.autoencoder.to(memory_format=torch.channels_last_3d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the U-Net")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, object] = {"cpu": cpu_kind(), "torch": torch.__version__}
    print(json.dumps(report["cpu"]))
    peak = matmul_peak()
    report["fp32_matmul_peak_gflops"] = peak
    print(f"float32 matrix-multiply peak: {peak:.0f} GFLOP/s")

    model = brainsynth.load_model("demo")
    one = flops_of(lambda: model.sample(seed=0, steps=1, scheduler="ddim", precision="float32"))
    two = flops_of(lambda: model.sample(seed=0, steps=2, scheduler="ddim", precision="float32"))
    unet_gflop, decode_gflop = two - one, one - (two - one)
    report["gflop"] = {"unet_step": unet_gflop, "decode": decode_gflop}
    print(f"GFLOP: U-Net step {unet_gflop:.1f}, decode {decode_gflop:.1f}")

    rows = [breakdown(model, args.runs, "float32 (decoder channels-last)")]
    channels_last(model)
    rows.append(breakdown(model, args.runs, "float32, U-Net channels-last too"))
    model = brainsynth.load_model("demo")
    if args.compile:
        started = time.perf_counter()
        model.unet = torch.compile(model.unet)
        model.sample(seed=0, steps=2, scheduler="ddim", precision="float32")
        report["compile_first_call_s"] = time.perf_counter() - started
        rows.append(breakdown(model, args.runs, "float32, torch.compile U-Net"))
        model = brainsynth.load_model("demo")
    for row in rows:
        row["unet_gflops"] = unet_gflop / row["unet_step_s"]
        row["decode_gflops"] = decode_gflop / row["decode_s"]
        print(
            f"{row['label']:<32} U-Net step {row['unet_step_s']:.3f} s ({row['unet_gflops']:.0f} GFLOP/s), "
            f"decode {row['decode_s']:.3f} s ({row['decode_gflops']:.0f} GFLOP/s), rest {row['rest_s']:.3f} s, "
            f"DDIM-20 brain {row['ddim20_s']:.2f} s"
        )
    report["breakdown"] = rows

    sweep = solver_sweep(model, CANDIDATES, seeds=args.runs, device="cpu", precision="float32")
    for row in sweep:
        print(f"{row['scheduler']:>13} {row['steps']:>3}: {row['psnr_db']:.1f} dB, SSIM {row['ssim']:.4f} to DDIM-50")
    report["sweep_float32"] = sweep

    speed = []
    defaults = (model.config.default_scheduler, model.config.default_steps)
    for (scheduler, steps), precision in [
        (("ddim", 20), "float32"),
        (defaults, "float32"),
        (defaults, "auto"),
    ]:
        measured = benchmark(
            "demo", device="cpu", steps=steps, scheduler=scheduler, runs=args.runs, precision=precision
        )
        gflop = steps * unet_gflop + decode_gflop
        seconds = measured["brainsynth"]["median_seconds"]
        row = {
            "method": measured["brainsynth"]["method"] + (" (precision auto)" if precision == "auto" else ""),
            "seconds": seconds,
            "reference_seconds": measured["reference"]["median_seconds"],
            "speedup": measured["speedup"],
            "peak_rss_mb": measured["brainsynth"]["peak_memory_mb"],
            "gflop": gflop,
            "gflops": gflop / seconds,
            "share_of_peak": gflop / seconds / peak,
            "psnr_to_ddim50_db": measured["difference_to_ddim50"]["psnr_db"],
        }
        speed.append(row)
        print(
            f"{row['method']:<28} {seconds:.2f} s per brain, reference {row['reference_seconds']:.2f} s "
            f"({row['speedup']:.2f}x), {row['gflops']:.0f} GFLOP/s = {100 * row['share_of_peak']:.0f} % of peak, "
            f"{row['psnr_to_ddim50_db']:.1f} dB to DDIM-50"
        )
    report["speed"] = speed
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
