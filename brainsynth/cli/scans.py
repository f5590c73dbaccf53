"""``brainsynth edit`` and ``brainsynth reconstruct``: a subject's own scan through a model."""

from __future__ import annotations

import argparse
from typing import Any

from brainsynth.cli.options import covariate_values, number_or_text
from brainsynth.cli.progress import progress_bar
from brainsynth.errors import InvalidParameterError
from brainsynth.files.nifti import check_output_path, save_nifti


def parse_source(text: str | None) -> dict[str, Any]:
    """``--source sex=female,age=63`` as covariates by name (numbers where they read as numbers)."""
    values: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InvalidParameterError(f"--source must look like NAME=VALUE,NAME=VALUE (got {item.strip()!r})")
        values[name.strip().replace("-", "_")] = number_or_text(value.strip())
    return values


def run_edit(args: argparse.Namespace) -> int:
    """``brainsynth edit``."""
    from brainsynth.loading.names import load_model
    from brainsynth.scans.editing import check_source, check_strength
    from brainsynth.scans.results import difference_path
    from brainsynth.scans.scan import load_scan

    targets = covariate_values(args)
    if not targets:
        raise InvalidParameterError("give at least one covariate to change, e.g. --age 80")
    source = parse_source(args.source)
    check_strength(args.strength)
    path = check_output_path(args.output, overwrite=args.overwrite, name="--output")
    check_output_path(difference_path(path), overwrite=args.overwrite, name="--output's difference file")
    model = load_model(args.model)
    check_source(model, source, args.extrapolate)
    scan = load_scan(args.scan, model, transform=args.transform, reference=args.reference, device=args.device)
    print(
        f"registered {args.scan} ({args.transform}, correlation {scan.registration.correlation:.2f}, "
        f"{scan.registration.seconds:.1f} s)"
    )
    with progress_bar("editing", args.quiet) as callback:
        result = model.edit(
            scan,
            [targets],
            source=source,
            strength=args.strength,
            steps=args.steps,
            device=args.device,
            precision=args.precision,
            extrapolate=args.extrapolate,
            callback=callback,
        )
    written = result.save(path, overwrite=args.overwrite)
    measured = "".join(f", {k} measured {v:g}" for k, v in result.measured[0].items())
    print(
        f"wrote {written[0]} and {written[1].name} (round trip {result.roundtrip_psnr_db:.1f} dB{measured}; "
        f"{result.provenance['time_taken_s']:.1f} s)"
    )
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    """``brainsynth reconstruct``."""
    from brainsynth.loading.names import load_model
    from brainsynth.scans.scan import load_scan

    path = check_output_path(args.output, overwrite=args.overwrite, name="--output")
    model = load_model(args.model)
    scan = load_scan(args.scan, model, transform=args.transform, reference=args.reference, device=args.device)
    reconstruction = model.reconstruct(scan, device=args.device)
    low, high = scan.intensity_range
    on_scan = scan.to_scan_grid(reconstruction.volume) * (high - low) + low
    sidecar = {
        "kind": "reconstruction",
        "psnr_db": round(reconstruction.psnr_db, 3),
        "ssim": round(reconstruction.ssim, 4),
        "scan": scan.record(),
        "model": model.name,
    }
    save_nifti(on_scan, scan.original_affine, path, sidecar=sidecar, overwrite=args.overwrite)
    print(f"wrote {path} (PSNR {reconstruction.psnr_db:.1f} dB, SSIM {reconstruction.ssim:.3f} on the model's grid)")
    return 0
