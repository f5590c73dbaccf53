"""``brainsynth benchmark``: the bundle's reference sampling loop against brainsynth's, on the same noise.

Each side runs in its own process, so each peak memory is its own (RSS on the CPU, CUDA max allocated
on a GPU). Reported per side: seconds per brain (median of the runs) and peak memory; then the
speed-up and memory ratios, and how far brainsynth's brain is from the reference DDIM-50 brain
(maximum and mean absolute difference, PSNR, SSIM).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsynth.devices import resolve_device
from brainsynth.errors import BrainsynthError
from brainsynth.model import LatentDiffusionModel
from brainsynth.sampling.noise import draw_noise

REFERENCE_STEPS = 50


@dataclass
class Side:
    """Measurements of one sampling method."""

    name: str
    seconds: list[float]
    peak_memory_mb: float
    memory_kind: str

    @property
    def median_seconds(self) -> float:
        return float(np.median(self.seconds))


def load_benchmark_model(name_or_path: str, random_weights: bool, seed: int = 0) -> LatentDiffusionModel:
    """The model to time; ``random_weights`` builds the published architecture (or the named preset's)
    with random weights, which is enough for timing when the real weights are absent."""
    from brainsynth.loading.names import load_model

    if not random_weights:
        return load_model(name_or_path)
    from brainsynth.loading.assemble import build_networks
    from brainsynth.loading.presets import ukb_config

    if name_or_path != "ukb":
        raise BrainsynthError("--random-weights builds the published architecture: use it with --model ukb")
    torch.manual_seed(seed)
    config = ukb_config(name="ukb-random-weights")
    networks = build_networks(config)
    return LatentDiffusionModel(config, **networks, source="random weights (timing only)")


def _reset_peak(device: torch.device) -> None:
    """Start peak-memory accounting afresh, after loading (Linux: reset the RSS high-water mark)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


#: Linux's report of this process (its peak resident memory, VmHWM).
PROC_STATUS = Path("/proc/self/status")


def _peak(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max allocated"
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0, "peak RSS while sampling"
    except OSError:
        pass
    try:
        import resource  # Unix only
    except ImportError:
        import psutil  # Windows: the peak working set

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20, "peak working set"
    scale = 2**20 if sys.platform == "darwin" else 1024.0  # ru_maxrss is bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, "peak RSS"


def run_side(spec: dict[str, Any]) -> dict[str, Any]:
    """One side of the benchmark, in this process (called in a subprocess by :func:`benchmark`)."""
    model = load_benchmark_model(spec["model"], spec["random_weights"])
    device = resolve_device(spec["device"])
    model.to(device)
    noise = draw_noise(spec["seed"], model.config.latent_shape)[None]
    covariates: dict[str, Any] = {}  # every covariate at the model's default
    from brainsynth.sampling.schedulers import make_scheduler

    make_scheduler(spec["scheduler"], model.config.noise_schedule, 1)  # imports happen before the clock starts
    model.decoding = spec.get("decoding", "auto")
    if spec["side"] == "brainsynth":
        model.set_weight_dtype(spec.get("weight_dtype", "float32"))
    if spec.get("compile"):  # True, or a torch.compile mode such as "reduce-overhead" (CUDA graphs)
        model.compile(**({"mode": spec["compile"]} if isinstance(spec["compile"], str) else {}))
    batch = int(spec.get("batch_size", 1)) if spec["side"] == "brainsynth" else 1
    _reset_peak(device)
    seconds, volume, used = [], None, {"precision": "float32", "guidance": 1.0}
    for _ in range(spec["runs"]):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        if spec["side"] == "reference":
            volume = _reference(model, noise.to(device), covariates, device)
        else:
            result = model.sample(
                covariates,
                noise=noise.repeat(batch, 1, 1, 1, 1),
                steps=spec["steps"],
                scheduler=spec["scheduler"],
                device=device,
                batch_size=batch,
                precision=spec.get("precision"),
            )
            volume = result.volumes[0]
            used = {"precision": result.settings["precision"], "guidance": result.settings["guidance"]}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append((time.perf_counter() - started) / batch)
    np.save(spec["volume_path"], volume)
    peak, kind = _peak(device)
    return {"seconds": seconds, "peak_memory_mb": peak, "memory_kind": kind, **used}


def _reference(model: LatentDiffusionModel, noise: torch.Tensor, covariates: dict, device: torch.device) -> np.ndarray:
    from brainsynth.covariates import resolve_covariates
    from brainsynth.sampling.reference import MonaiShaped, reference_sample
    from brainsynth.sampling.schedulers import make_scheduler

    normalised = resolve_covariates(model.config.covariates, covariates).normalised
    conditioning = torch.tensor([[normalised]], dtype=torch.float32, device=device)
    scheduler = MonaiShaped(make_scheduler("ddim", model.config.noise_schedule, REFERENCE_STEPS))
    image = reference_sample(
        noise, model.autoencoder, model.unet, scheduler, conditioning, scale_factor=model.config.scale_factor
    )
    return image[0, 0].float().cpu().numpy()


def run_side_in_subprocess(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run :func:`run_side` in a fresh Python process (its own peak memory), waiting at most ``timeout`` s.

    ``spec`` holds ``side`` (``"reference"`` or ``"brainsynth"``), ``model``, ``random_weights``,
    ``device``, ``steps``, ``scheduler``, ``runs``, ``seed``, ``volume_path`` (where the first brain is
    saved as ``.npy``) and, for brainsynth's side, optionally ``batch_size``, ``precision``,
    ``weight_dtype``, ``decoding`` and ``compile``. Returns the seconds per brain of each run, the peak
    memory in MB, what kind of peak it is, and the precision and guidance the sampling used.
    """
    process = subprocess.run(
        [sys.executable, "-m", "brainsynth.evaluation.benchmark", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if process.returncode != 0:
        raise BrainsynthError(f"benchmark side {spec['side']} failed: {process.stderr.strip().splitlines()[-1:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def benchmark(
    model: str,
    *,
    device: str = "auto",
    steps: int | None = None,
    scheduler: str | None = None,
    runs: int = 1,
    seed: int = 0,
    random_weights: bool = False,
    batch_size: int = 1,
    precision: str | None = None,
    decoding: str = "auto",
    compile: bool | str = False,  # noqa: A002
    weight_dtype: str = "float32",
) -> dict[str, Any]:
    """Time the reference loop (DDIM-50) and brainsynth's sampler on the same noise; return the report.

    ``batch_size``, ``precision``, ``decoding`` and ``compile`` (``True`` or a :func:`torch.compile`
    mode such as ``"reduce-overhead"``) apply to brainsynth's side; its time
    is per brain (a batch's time divided by its size), so ``1 / seconds`` is its throughput.
    """
    from brainsynth.evaluation.metrics import psnr, ssim

    loaded = load_benchmark_model(model, random_weights)  # fails early on a bad model
    steps = steps or loaded.config.default_steps
    scheduler = scheduler or loaded.config.default_scheduler
    del loaded
    with tempfile.TemporaryDirectory() as folder:
        sides, volumes = {}, {}
        for side in ("reference", "brainsynth"):
            spec = {
                "side": side,
                "model": model,
                "random_weights": random_weights,
                "device": device,
                "steps": steps,
                "scheduler": scheduler,
                "runs": runs,
                "seed": seed,
                "batch_size": batch_size,
                "precision": precision,
                "decoding": decoding,
                "compile": compile,
                "weight_dtype": weight_dtype,
                "volume_path": str(Path(folder) / f"{side}.npy"),
            }
            measured = run_side_in_subprocess(spec)
            sides[side] = Side(
                name=side,
                seconds=measured["seconds"],
                peak_memory_mb=measured["peak_memory_mb"],
                memory_kind=measured["memory_kind"],
            )
            volumes[side] = np.load(spec["volume_path"])
    used = measured  # brainsynth's side, measured last: the precision and guidance its sampling used
    difference = np.abs(volumes["brainsynth"] - volumes["reference"])
    clipped = [np.clip(volumes[s], 0, 1) for s in ("reference", "brainsynth")]
    return {
        "model": model,
        "device": str(resolve_device(device)),
        "runs": runs,
        "device_name": torch.cuda.get_device_name() if resolve_device(device).type == "cuda" else _cpu_name(),
        "reference": {
            **asdict(sides["reference"]),
            "median_seconds": sides["reference"].median_seconds,
            "method": f"bundle loop, ddim {REFERENCE_STEPS} steps",
        },
        "brainsynth": {
            **asdict(sides["brainsynth"]),
            "median_seconds": sides["brainsynth"].median_seconds,
            "brains_per_second": 1.0 / sides["brainsynth"].median_seconds,
            "method": _method(
                scheduler, steps, batch_size, used["precision"], decoding, compile, weight_dtype, used["guidance"]
            ),
            "batch_size": batch_size,
            "precision": used["precision"],
            "guidance": used["guidance"],
            "decoding": decoding,
            "compile": compile,
        },
        "speedup": sides["reference"].median_seconds / sides["brainsynth"].median_seconds,
        "memory_ratio": sides["reference"].peak_memory_mb / sides["brainsynth"].peak_memory_mb,
        "difference_to_ddim50": {
            "max_abs": float(difference.max()),
            "mean_abs": float(difference.mean()),
            "psnr_db": psnr(*clipped),
            "ssim": ssim(*clipped),
        },
    }


def _method(
    scheduler: str,
    steps: int,
    batch_size: int,
    precision: str,
    decoding: str,
    compiled: bool | str,
    weight_dtype: str = "float32",
    guidance: float = 1.0,
) -> str:
    extras = [f"batch {batch_size}"] if batch_size > 1 else []
    extras += [precision] if precision != "float32" else []
    extras += [f"guidance {guidance:g}"] if guidance != 1.0 else []
    extras += [f"{weight_dtype} weights"] if weight_dtype != "float32" else []
    extras += [f"{decoding} decoding"] if decoding != "auto" else []
    extras += (
        [f"compiled ({compiled})" if isinstance(compiled, str) and compiled != "default" else "compiled"]
        if compiled
        else []
    )
    return f"{scheduler} {steps} steps" + (f" ({', '.join(extras)})" if extras else "")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


def format_report(report: dict[str, Any]) -> str:
    """The report as a small text table."""
    lines = [f"model {report['model']} on {report['device']} ({report['device_name']}), {report['runs']} run(s)"]
    for side in ("reference", "brainsynth"):
        entry = report[side]
        lines.append(
            f"  {side:<11} {entry['method']:<28} {entry['median_seconds']:8.2f} s per brain   "
            f"{entry['peak_memory_mb']:9.0f} MB {entry['memory_kind']}"
        )
    diff = report["difference_to_ddim50"]
    lines.append(
        f"  speed-up {report['speedup']:.2f}x, memory {report['memory_ratio']:.2f}x less; difference to "
        f"DDIM-50: max {diff['max_abs']:.4f}, mean {diff['mean_abs']:.5f}, PSNR {diff['psnr_db']:.1f} dB, "
        f"SSIM {diff['ssim']:.4f}"
    )
    return "\n".join(lines)


def parse_sweep(text: str) -> list[tuple[str, int]]:
    """``"ddim:10,20;dpm-solver++:10,15"`` -> [("ddim", 10), ("ddim", 20), ("dpm-solver++", 10), ...]."""
    from brainsynth.sampling.schedulers import SCHEDULERS

    pairs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, counts = part.partition(":")
        name = name.strip().lower()
        if not sep or name not in SCHEDULERS:
            raise BrainsynthError(
                f"--sweep must look like 'ddim:10,20;dpm-solver++:10' with schedulers from "
                f"{', '.join(SCHEDULERS)} (got {part!r})"
            )
        try:
            steps = [int(c) for c in counts.split(",") if c.strip()]
        except ValueError:
            raise BrainsynthError(f"--sweep step counts must be integers (got {counts!r})") from None
        if not steps or min(steps) < 1:
            raise BrainsynthError(f"--sweep needs at least one step count of 1 or more for {name} (got {counts!r})")
        pairs += [(name, s) for s in steps]
    if not pairs:
        raise BrainsynthError(f"--sweep lists no solver (got {text!r})")
    return pairs


def solver_sweep(
    model: LatentDiffusionModel,
    pairs: list[tuple[str, int]],
    *,
    seeds: int = 4,
    device: str = "auto",
    covariates: dict[str, Any] | None = None,
    precision: str | None = None,
) -> list[dict[str, Any]]:
    """Quality of each (solver, steps) against DDIM-50 on the same noise, and its time per brain.

    For every seed, DDIM-50 gives the reference brain; each pair's brain from the same initial noise is
    compared to it (PSNR and SSIM on [0, 1], mean absolute difference of the latents). Returned rows hold
    the means over seeds and the median seconds per brain. ``precision`` (default: the model's) applies
    to the reference and to every pair, so the rows compare solvers, not arithmetic.
    """
    from brainsynth.evaluation.metrics import psnr, ssim

    covariates = covariates if covariates is not None else {}  # the model's defaults
    references = [
        model.sample(covariates, seed=s, steps=REFERENCE_STEPS, scheduler="ddim", device=device, precision=precision)
        for s in range(seeds)
    ]
    rows = []
    for name, steps in pairs:
        scores: dict[str, list[float]] = {"psnr_db": [], "ssim": [], "latent_mean_abs": [], "seconds": []}
        for seed, reference in enumerate(references):
            started = time.perf_counter()
            result = model.sample(
                covariates, seed=seed, steps=steps, scheduler=name, device=device, precision=precision
            )
            scores["seconds"].append(time.perf_counter() - started)
            a, b = np.clip(reference.volume, 0, 1), np.clip(result.volume, 0, 1)
            scores["psnr_db"].append(psnr(a, b))
            scores["ssim"].append(ssim(a, b))
            scores["latent_mean_abs"].append(float(np.abs(reference.latents - result.latents).mean()))
        rows.append(
            {
                "scheduler": name,
                "steps": steps,
                "seeds": seeds,
                "psnr_db": float(np.mean(scores["psnr_db"])),
                "ssim": float(np.mean(scores["ssim"])),
                "latent_mean_abs": float(np.mean(scores["latent_mean_abs"])),
                "median_seconds": float(np.median(scores["seconds"])),
                "precision": result.settings.get("precision", precision),
            }
        )
    return rows


def format_sweep(rows: list[dict[str, Any]]) -> str:
    """The sweep as a text table."""
    lines = [f"{'solver':<14}{'steps':>6}{'PSNR dB':>9}{'SSIM':>8}{'latent |d|':>12}{'s/brain':>9}   vs DDIM-50"]
    for row in rows:
        lines.append(
            f"{row['scheduler']:<14}{row['steps']:>6}{row['psnr_db']:>9.1f}{row['ssim']:>8.4f}"
            f"{row['latent_mean_abs']:>12.4f}{row['median_seconds']:>9.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # one side, in a subprocess of benchmark()
    print(json.dumps(run_side(json.loads(sys.argv[1]))))
