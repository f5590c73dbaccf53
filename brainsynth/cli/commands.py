"""What each ``brainsynth`` subcommand does, given parsed arguments."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsynth.cli.audit import run_audit
from brainsynth.cli.options import covariate_values, number_or_text
from brainsynth.cli.progress import progress_bar, work_bar
from brainsynth.cli.scans import run_edit, run_reconstruct
from brainsynth.cli.training import run_cohort, run_evaluate, run_export, run_train
from brainsynth.controls import result_title
from brainsynth.devices import available_devices, low_precision_issues, resolve_device
from brainsynth.errors import BrainsynthError, InvalidParameterError, OutputExistsError
from brainsynth.files.nifti import check_output_path, is_nifti_path
from brainsynth.files.paths import check_output_name
from brainsynth.loading.hub import MODEL_NAMES, bundle_search_path, download_ukb, find_named_model
from brainsynth.loading.names import load_model
from brainsynth.model import LatentDiffusionModel
from brainsynth.result import SampleResult, output_paths
from brainsynth.sampling.noise import check_seed
from brainsynth.sampling.timesteps import DEFAULT_TIMESTEP_SPACING


def _check_output(args: argparse.Namespace, count: int, series: bool) -> None:
    """Refuse a bad output path before loading the model or computing anything."""
    path = check_output_name(args.output, "--output")
    if not is_nifti_path(path):
        if path.exists() and not path.is_dir():
            raise InvalidParameterError(f"--output {str(path)!r} is a file; give a .nii/.nii.gz name or a folder")
        if not path.is_dir():
            return  # a new folder: nothing in it to clash with
    for target in output_paths(path, 1 if series and is_nifti_path(path) else count):
        check_output_path(target, overwrite=args.overwrite, name="--output")


def _sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    # Fail on bad settings before loading the model; the model checks them again with its own defaults.
    resolve_device(args.device)
    for flag in ("seed", "seed_a", "seed_b"):
        if getattr(args, flag, None) is not None:
            check_seed(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.steps is not None and args.steps < 1:
        raise InvalidParameterError(f"--steps must be at least 1 (got {args.steps})")
    if args.weight_dtype != "float32" and args.precision not in (None, args.weight_dtype):
        raise InvalidParameterError(
            f"--weight-dtype {args.weight_dtype} needs --precision {args.weight_dtype} "
            f"(got --precision {args.precision})"
        )
    return {
        "steps": args.steps,
        "scheduler": args.scheduler,
        "eta": args.eta,
        "device": args.device,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "guidance": args.guidance,
        "timestep_spacing": args.timestep_spacing,
    }


def _load_for_sampling(args: argparse.Namespace):
    model = load_model(args.model)
    model.decoding = args.decoding
    return model.set_weight_dtype(args.weight_dtype)


def _write(result: SampleResult, args: argparse.Namespace, *, series: bool) -> list[Path]:
    if series and is_nifti_path(args.output):
        return [result.save_series(args.output, dtype=args.dtype, overwrite=args.overwrite)]
    return result.save(args.output, dtype=args.dtype, overwrite=args.overwrite)


def _report(result: SampleResult, paths: list[Path]) -> None:
    settings, provenance = result.settings, result.provenance
    seeds = sorted({s for s in result.seeds if s is not None})
    seed_text = f"seed {', '.join(map(str, seeds))}; " if seeds else ""
    where = paths[0] if len(paths) == 1 else f"{len(paths)} files in {paths[0].parent}"
    print(
        f"wrote {where} ({len(result)} brain{'s' if len(result) > 1 else ''}; {seed_text}"
        f"{settings['steps']} {settings['scheduler']} steps; "
        f"{provenance['time_taken_s']:.1f} s on {settings['device']})"
    )


def run_sample(args: argparse.Namespace) -> int:
    """``brainsynth sample``."""
    covariates = covariate_values(args)
    options = _sampling_options(args)
    _check_output(args, args.batch_size, series=False)
    model = _load_for_sampling(args)
    with progress_bar("sampling", args.quiet) as callback:
        result = model.sample(covariates, seed=args.seed, extrapolate=args.extrapolate, callback=callback, **options)
    _report(result, _write(result, args, series=False))
    return 0


def _traverse_values(args: argparse.Namespace) -> list[Any]:
    if args.values is not None:
        if any(v is not None for v in (args.start, args.stop, args.frames)):
            raise InvalidParameterError("give either --values or --start/--stop/--frames, not both")
        values = [number_or_text(v.strip()) for v in args.values.split(",") if v.strip()]
        if not values:
            raise InvalidParameterError(f"--values must list at least one value (got {args.values!r})")
        return values
    if args.start is None or args.stop is None or args.frames is None:
        raise InvalidParameterError("give --values V1,V2,... or all of --start, --stop and --frames")
    if args.frames < 2:
        raise InvalidParameterError(f"--frames must be at least 2 (got {args.frames})")
    return [float(v) for v in np.linspace(args.start, args.stop, args.frames)]


def run_traverse(args: argparse.Namespace) -> int:
    """``brainsynth traverse``."""
    values = _traverse_values(args)
    covariates = covariate_values(args)
    options = _sampling_options(args)
    _check_output(args, len(values), series=True)
    model = _load_for_sampling(args)
    with progress_bar(f"traversing {args.sweep}", args.quiet) as callback:
        result = model.traverse(
            args.sweep, values, seed=args.seed, extrapolate=args.extrapolate, callback=callback, **options, **covariates
        )
    _report(result, _write(result, args, series=True))
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    """``brainsynth interpolate``."""
    start, end = covariate_values(args), covariate_values(args, "-b")
    options = _sampling_options(args)
    _check_output(args, args.frames, series=True)
    model = _load_for_sampling(args)
    with progress_bar("interpolating", args.quiet) as callback:
        result = model.interpolate(
            args.seed_a,
            args.seed_b,
            args.frames,
            covariates_a=start,
            covariates_b={**start, **end},
            extrapolate=args.extrapolate,
            callback=callback,
            **options,
        )
    _report(result, _write(result, args, series=True))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """``brainsynth generate``."""

    from brainsynth.generate import generate_dataset, parse_shard

    shard = parse_shard(args.shard)
    options = _sampling_options(args)
    batch_size = options.pop("batch_size")
    if args.device != "cpu" and "LOCAL_RANK" in os.environ and options["device"] in ("auto", "cuda"):
        options["device"] = f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else "cpu"
    model = _load_for_sampling(args)
    with work_bar(f"shard {shard[0]}/{shard[1]}", args.quiet) as callback:
        counts = generate_dataset(
            model,
            args.output,
            n=args.n,
            covariates=args.covariates,
            seed=args.seed,
            shard=shard,
            batch_size=batch_size,
            extrapolate=args.extrapolate,
            writers=args.writers,
            dtype=args.dtype,
            callback=callback,
            **options,
        )
    print(
        f"shard {shard[0]}/{shard[1]}: wrote {counts['written']}, skipped {counts['skipped']} already done "
        f"(of {counts['total']} rows) in {args.output}; "
        f"the sampler waited {counts['sampler_waited_s']:.1f} s on writing"
    )
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    """``brainsynth benchmark``."""
    from brainsynth.evaluation.benchmark import benchmark, format_report
    from brainsynth.files.atomic import atomic_write_json

    if args.runs < 1:
        raise InvalidParameterError(f"--runs must be at least 1 (got {args.runs})")
    if args.batch_size < 1:
        raise InvalidParameterError(f"--batch-size must be at least 1 (got {args.batch_size})")
    resolve_device(args.device)
    if args.sweep:
        from brainsynth.evaluation.benchmark import format_sweep, parse_sweep, solver_sweep

        pairs = parse_sweep(args.sweep)
        rows = solver_sweep(
            load_model(args.model), pairs, seeds=args.runs, device=args.device, precision=args.precision
        )
        print(format_sweep(rows))
        if args.json:
            atomic_write_json(args.json, {"model": args.model, "sweep": rows})
        return 0
    report = benchmark(
        args.model,
        device=args.device,
        steps=args.steps,
        scheduler=args.scheduler,
        runs=args.runs,
        seed=args.seed,
        random_weights=args.random_weights,
        batch_size=args.batch_size,
        precision=args.precision,
        decoding=args.decoding,
        compile=args.compile,
        weight_dtype=args.weight_dtype,
    )
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, report)
    return 0


def describe_model(model: LatentDiffusionModel) -> str:
    """Text block describing a model's grid and covariates, for ``brainsynth info``."""
    config = model.config
    lines = [
        f"model {config.name}: {config.description}",
        f"  source: {model.source}"
        + (f" ({config.extra['bundle_layout']} bundle layout)" if config.extra.get("bundle_layout") else ""),
        f"  image: {' x '.join(map(str, config.image_shape))} voxels of "
        f"{' x '.join(f'{v:g}' for v in config.voxel_size)} mm; latent {' x '.join(map(str, config.latent_shape))}",
        f"  sampling default: {config.default_scheduler}, {config.default_steps} steps "
        f"({DEFAULT_TIMESTEP_SPACING} timesteps), precision {config.default_precision}; conditioning "
        f"{config.conditioning}",
        f"  guidance: default {config.default_guidance:g}"
        + ("" if config.null_condition is not None else " (trained without conditioning dropout: 1 only)"),
        "  covariates:",
    ]
    for spec in config.covariates:
        lines.append(f"    {spec.name:<20} {spec.describe_range():<28} default {spec.default}  {spec.description}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """``brainsynth info``."""
    if args.model:
        print(describe_model(load_model(args.model)))
    else:
        print("models:")
        for name, text in MODEL_NAMES.items():
            try:
                where = f"installed at {find_named_model(name)}"
            except BrainsynthError:
                where = "not installed"
            print(f"  {name:<6} {text}\n         {where}")
        print("  or any brainsynth model folder (model.json) or MONAI bundle folder (configs/inference.json)")
    print(f"devices: {', '.join(available_devices())} (auto picks {resolve_device('auto')})")
    if torch.cuda.is_available():
        print(f"CUDA: torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
        for precision in ("bfloat16", "float16"):
            for issue in low_precision_issues(precision):
                print(f"  known issue: {issue}")
    return 0


#: What the napari face imports: without any of them ``explore`` writes files instead.
NAPARI_MODULES = ("napari", "magicgui", "qtpy")


def missing_modules(names: Sequence[str]) -> list[str]:
    """Those of ``names`` that cannot be imported here, found without importing them."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken installation, or a module left half-imported
            found = False
        if not found:
            missing.append(name)
    return missing


def has_display() -> bool:
    """Whether a window can open here (an X or Wayland display on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run_explore(args: argparse.Namespace) -> int:
    """``brainsynth explore``: napari with the widgets, or one brain written to files without a display."""
    missing = missing_modules(NAPARI_MODULES)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        reason = f"{' and '.join(missing)} {verb} not installed (pip install 'brainsynth[napari]')"
    elif not has_display():
        reason = "there is no display (DISPLAY is not set)"
    else:
        reason = ""
    if reason:
        if args.screenshot:
            raise BrainsynthError(f"--screenshot needs napari and a display, and {reason}")
        return _explore_without_display(args, reason)
    if args.model:
        load_model(args.model)  # a bad model name fails here, in one line
    from napari_plugin._explore import explore

    path = explore(args.model, args.screenshot, seed=args.seed)
    if path is not None:
        print(f"wrote {path}")
    return 0


def _explore_without_display(args: argparse.Namespace, reason: str) -> int:
    from brainsynth.figures import save_orthogonal_slices

    path = Path(args.output).expanduser()
    if not is_nifti_path(path):
        raise InvalidParameterError(f"--output must end in .nii or .nii.gz (got {args.output!r})")
    png = path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".png")
    check_output_path(path, overwrite=False, name="--output")
    if png.exists():
        raise OutputExistsError(f"{png} exists; choose another --output")
    print(f"napari cannot open here: {reason}; writing one brain instead")
    model = load_model(args.model or "demo")
    with progress_bar("sampling", False) as callback:
        result = model.sample(seed=args.seed, callback=callback)
    paths = result.save(path)
    save_orthogonal_slices([result.volume], [result.affine], png, titles=[_title(result)], columns=1)
    _report(result, paths)
    print(f"wrote {png} (orthogonal slices) and {paths[0].name.split('.')[0]}.json (how it was made)")
    return 0


def _title(result: SampleResult) -> str:
    return f"{result.provenance['model']}: {result_title(result.covariates[0], result.seeds[0])}"


def run_serve(args: argparse.Namespace) -> int:
    """``brainsynth serve``."""
    from brainsynth.jupyter.serve import serve

    return serve(args.model, port=args.port, host=args.host)


def run_download(args: argparse.Namespace) -> int:
    """``brainsynth download``."""
    path = download_ukb(args.dir)
    use = "ukb" if path.parent in bundle_search_path() else str(path)
    print(f"downloaded {args.name} to {path}; use it with --model {use}")
    return 0


COMMANDS = {
    "cohort": run_cohort,
    "train": run_train,
    "export": run_export,
    "evaluate": run_evaluate,
    "sample": run_sample,
    "traverse": run_traverse,
    "interpolate": run_interpolate,
    "info": run_info,
    "generate": run_generate,
    "audit": run_audit,
    "benchmark": run_benchmark,
    "explore": run_explore,
    "serve": run_serve,
    "download": run_download,
    "edit": run_edit,
    "reconstruct": run_reconstruct,
}
