"""The model builders' subcommands: ``cohort``, ``train`` and ``export``."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from brainsynth.errors import InvalidParameterError, OutputExistsError


def run_cohort(args: argparse.Namespace) -> int:
    """``brainsynth cohort``."""
    import time

    from brainsynth.cli.progress import work_bar
    from brainsynth.synthetic.cohort import generate_cohort

    started = time.perf_counter()
    with work_bar("cohort", args.quiet) as callback:
        folder = generate_cohort(
            args.n, args.output, spacing=args.spacing, seed=args.seed, overwrite=args.overwrite, callback=callback
        )
    elapsed = time.perf_counter() - started
    print(f"wrote {args.n} subjects to {folder} in {elapsed:.1f} s ({elapsed / args.n:.2f} s per subject)")
    if args.png:
        print(f"wrote {write_cohort_png(folder, args.png)}")
    return 0


def write_cohort_png(folder: Path, png: str | Path, count: int = 8) -> Path:
    """Orthogonal slices of up to ``count`` subjects spread over the cohort's age range."""
    from brainsynth.figures import save_orthogonal_slices
    from brainsynth.files.nifti import load_nifti

    with open(folder / "participants.tsv", newline="") as stream:
        rows = sorted(csv.DictReader(stream, delimiter="\t"), key=lambda r: float(r["age"]))
    picked = [rows[round(i * (len(rows) - 1) / max(count - 1, 1))] for i in range(min(count, len(rows)))]
    picked = list({r["participant_id"]: r for r in picked}.values())
    volumes, affines, titles = [], [], []
    for row in picked:
        pid = row["participant_id"]
        volume, affine, _ = load_nifti(folder / pid / "anat" / f"{pid}_T1w.nii.gz")
        volumes.append(volume)
        affines.append(affine)
        ventricles = float(row["ventricular_volume_ml"])
        titles.append(f"{row['sex']} {float(row['age']):.0f} y, ventricles {ventricles:.0f} ml")
    return save_orthogonal_slices(volumes, affines, png, titles=titles, columns=2)


def run_train(args: argparse.Namespace) -> int:
    """``brainsynth train autoencoder|diffusion``."""
    from brainsynth.training import train_autoencoder, train_diffusion

    options = {
        "resume": args.resume,
        "overwrite": args.overwrite,
        "device": args.device,
        "quiet": args.quiet,
        "steps": args.steps,
    }
    if args.stage == "autoencoder":
        result = train_autoencoder(args.data, args.config, args.output, init_from=args.init_from, **options)
    else:
        result = train_diffusion(
            args.data, args.autoencoder, args.config, args.output, init_from=args.init_from, **options
        )
    print(f"trained {args.stage}: {result}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``brainsynth export``."""
    from brainsynth.loading.export import export_bundle
    from brainsynth.loading.names import load_model

    if args.format != "monai-bundle":
        raise InvalidParameterError(f"--format must be monai-bundle (got {args.format!r})")
    print(f"wrote {export_bundle(load_model(args.model), args.output, overwrite=args.overwrite)}")
    return 0


def _stage_printer():
    """A callback of long work that prints one line per stage (``evaluating: <stage>``)."""
    shown: list[str] = []

    def show(progress) -> None:
        if progress.step is None and progress.message and progress.message not in shown:
            shown.append(progress.message)
            print(f"evaluating: {progress.message}", flush=True)

    return show


def _evaluate_edits(model, args: argparse.Namespace) -> int:
    from brainsynth.cli.progress import work_bar
    from brainsynth.evaluation.edits import evaluate_edits
    from brainsynth.files.paths import check_output_name

    output = check_output_name(args.output, "--output")
    if (output / "edits.md").exists() and not args.overwrite:
        raise OutputExistsError(f"{output / 'edits.md'} exists; pass --overwrite to replace it")
    with work_bar("edits", False) as callback:
        summary = evaluate_edits(model, output, n=args.n, seed=args.seed, device=args.device, callback=callback)
    print(f"wrote {output / 'edits.md'}")
    print((output / "edits.md").read_text().strip())
    return 0 if summary else 1


def run_evaluate(args: argparse.Namespace) -> int:
    """``brainsynth evaluate``."""
    from brainsynth.evaluation.report import check_request, evaluate_model
    from brainsynth.loading.names import load_model

    covariates = None if args.covariates is None else [c.strip() for c in args.covariates.split(",") if c.strip()]
    if isinstance(args.n, int) and args.n < 2:
        raise InvalidParameterError(f"--n must be at least 2 (pairs are compared; got {args.n})")
    model = load_model(args.model)
    if args.edits:
        return _evaluate_edits(model, args)
    check_request(model, args.n, covariates, args.fidelity)
    report = evaluate_model(
        model,
        args.output,
        n=args.n,
        data=args.data,
        covariates=covariates,
        fidelity=args.fidelity,
        segmenter=args.segmenter,
        seed=args.seed,
        device=args.device,
        guidance=args.guidance,
        overwrite=args.overwrite,
        callback=_stage_printer(),
    )
    print(f"wrote {Path(args.output) / 'report.md'}")
    for item in report.fidelity:
        against_real = (
            ""
            if math.isnan(item.mean_absolute_error_vs_real)
            else f", MAE vs the real images = {item.mean_absolute_error_vs_real:.1f} ml"
        )
        print(f"  {item.covariate}: r = {item.pearson_r:.3f}, MAE = {item.mean_absolute_error:.1f} ml{against_real}")
    print(
        f"  MS-SSIM samples {report.samples_ms_ssim:.4f} vs real {report.real_ms_ssim:.4f}; 4-G-R-SSIM samples "
        f"{report.samples_gradient_ssim:.4f} vs real {report.real_gradient_ssim:.4f}; reconstruction "
        f"PSNR {report.reconstruction_psnr_db:.2f} dB; {report.seconds_per_sample:.2f} s per sample"
    )
    return 0
