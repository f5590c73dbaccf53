"""Argument parser of the ``brainsynth`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from brainsynth._version import __version__
from brainsynth.cli.audit import add_audit_parser
from brainsynth.cli.options import (
    add_covariate_flags,
    add_covariates,
    add_dtype,
    add_model,
    add_output,
    add_registration,
    add_sampling,
    output_path,
)
from brainsynth.config import SAMPLING_PRECISIONS
from brainsynth.covariates import CovariateSpec
from brainsynth.devices import PRECISIONS
from brainsynth.sampling.decoding import DECODING_MODES
from brainsynth.sampling.schedulers import SCHEDULERS

EXAMPLES = {
    "edit": """examples:
  brainsynth edit /usr/share/mricron/templates/ch2bet.nii.gz --source sex=female,age=27 --age 70 --output older.nii.gz
  brainsynth edit scan.nii.gz --model ukb --source sex=male,age=63,ventricular_volume=30,brain_volume=1400 \\
      --ventricular-volume 60 --strength 0.6 --output bigger_ventricles.nii.gz""",
    "sample": """examples:
  brainsynth sample --sex female --age 70 --seed 1 --output brain.nii.gz
  brainsynth sample --model ukb --sex male --age 60 --ventricular-volume 45 --brain-volume 1400 \\
      --seed 7 --steps 50 --scheduler ddim --device auto --output brain.nii.gz
  brainsynth sample --model path/to/bundle --set c0=0.5 --output out.nii.gz --overwrite""",
    "traverse": """examples:
  brainsynth traverse --covariate age --values 50,60,70,80 --seed 3 --output ageing.nii.gz
  brainsynth traverse --covariate ventricular_volume --start 10 --stop 150 --frames 8 --output frames/""",
    "interpolate": """examples:
  brainsynth interpolate --seed-a 1 --seed-b 2 --frames 8 --output morph.nii.gz
  brainsynth interpolate --seed-a 1 --seed-b 1 --frames 5 --age 50 --age-b 80 --output folder/""",
    "generate": """examples:
  brainsynth generate --n 1000 --output synthetic/            # covariates drawn over the training ranges
  brainsynth generate --covariates wanted.tsv --output synthetic/ --batch-size 4
  brainsynth generate --covariates wanted.tsv --output synthetic/ --shard 2/4   # machine 2 of 4
  torchrun --nproc_per_node=8 -m brainsynth generate --covariates wanted.tsv --output synthetic/ --device cuda""",
    "benchmark": """examples:
  brainsynth benchmark --model demo --runs 3
  brainsynth benchmark --model ukb --random-weights --device cuda --runs 5 --json bench.json
  brainsynth benchmark --model demo --sweep 'ddim:10,20;dpm-solver++:10,15,20' --runs 4""",
    "info": """examples:
  brainsynth info
  brainsynth info --model ukb""",
    "download": """examples:
  brainsynth download ukb""",
    "serve": """examples:
  brainsynth serve                              # http://127.0.0.1:8866/ on this computer only
  brainsynth serve --model runs/mine --port 9000
  brainsynth serve --host 0.0.0.0               # every network interface: anyone who can reach it can use it""",
    "explore": """examples:
  brainsynth explore
  brainsynth explore --model ukb
  brainsynth explore --model runs/demo --screenshot brain3d.png""",
    "cohort": """examples:
  brainsynth cohort --n 16 --spacing 2 --seed 0 --output cohort --png cohort.png""",
    "train": """examples:
  brainsynth train autoencoder --data cohort --config demo --output runs/autoencoder
  brainsynth train diffusion --data cohort --autoencoder runs/autoencoder --config demo --output runs/demo
  brainsynth train diffusion ... --resume               # continue from the last checkpoint
  torchrun --nproc_per_node=4 -m brainsynth train autoencoder ...   # several GPUs or processes""",
    "evaluate": """examples:
  brainsynth evaluate --model demo --n 32 --output report
  brainsynth evaluate --model runs/mine --data held_out_scans --segmenter mytools.seg:volumes --output report""",
    "export": """examples:
  brainsynth export --model runs/demo --format monai-bundle --output demo_bundle""",
}


def subparser(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES.get(name),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_training_commands(subparsers) -> None:
    cohort = subparser(subparsers, "cohort", "Generate a synthetic brain cohort from the MNI152 template.")
    cohort.add_argument("--n", type=int, required=True, help="number of subjects")
    cohort.add_argument(
        "--spacing", type=float, default=2.0, metavar="MM", help="voxel size in mm (default 2: 80 x 112 x 80 voxels)"
    )
    cohort.add_argument("--seed", type=int, default=0, help="seed of the cohort (default 0)")
    cohort.add_argument(
        "--output", "-o", required=True, type=output_path, metavar="DIR", help="cohort folder (BIDS-like)"
    )
    cohort.add_argument(
        "--png", type=output_path, metavar="FILE", help="also write orthogonal slices of up to 8 subjects"
    )
    cohort.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    cohort.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    train = subparser(subparsers, "train", "Train an autoencoder, then a latent diffusion model.")
    stages = train.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for stage, text in (
        ("autoencoder", "Train the autoencoder (first stage)."),
        ("diffusion", "Train the latent diffusion U-Net on a trained autoencoder (second stage)."),
    ):
        sub = stages.add_parser(
            stage,
            help=text,
            description=text,
            epilog=EXAMPLES["train"],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--data", required=True, metavar="DIR", help="folder with participants.tsv and sub-*/anat")
        if stage == "diffusion":
            sub.add_argument("--autoencoder", required=True, metavar="DIR", help="run folder of the autoencoder")
            sub.add_argument(
                "--init-from",
                metavar="MODEL",
                help="fine-tune: start from this model's U-Net weights (same autoencoder and settings)",
            )
        else:
            sub.add_argument(
                "--init-from",
                metavar="DIR_OR_MODEL",
                help="start from this trained autoencoder (run folder) or model's autoencoder (same settings); "
                "with autoencoder.fine_tune 'decoder' only its decoder is trained and the latents stay the same",
            )
        sub.add_argument(
            "--config",
            default="demo",
            metavar="PRESET_OR_FILE",
            help="preset (tiny, demo, paper) or JSON file (default demo)",
        )
        sub.add_argument("--output", "-o", required=True, type=output_path, metavar="DIR", help="run folder")
        sub.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
        sub.add_argument(
            "--steps",
            type=int,
            metavar="N",
            help="train to N steps instead of the configuration's (with --resume: train longer)",
        )
        sub.add_argument("--overwrite", action="store_true", help="replace a run already in the folder")
        sub.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
        sub.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    evaluate = subparser(subparsers, "evaluate", "Measure reconstruction, diversity and conditioning fidelity.")
    evaluate.add_argument("--model", default="demo", metavar="M", help="model name or folder (default demo)")
    evaluate.add_argument("--n", type=int, default=16, help="samples per measurement (default 16)")
    evaluate.add_argument("--output", "-o", required=True, type=output_path, metavar="DIR", help="report folder")
    evaluate.add_argument("--data", metavar="DIR", help="held-out real images (default: a fresh synthetic cohort)")
    evaluate.add_argument(
        "--covariates",
        metavar="A,B",
        help="covariates whose fidelity is measured (default: those of the model the segmenter measures)",
    )
    evaluate.add_argument(
        "--fidelity",
        default="cohort",
        choices=("cohort", "sweep"),
        help="requests of the fidelity measurement: the held-out subjects' covariates (cohort, "
        "default) or one covariate swept over their range, the others at defaults (sweep)",
    )
    evaluate.add_argument(
        "--segmenter",
        metavar="MODULE:FUNCTION",
        help="volume measurement (default: brainsynth's template-space segmentation)",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    evaluate.add_argument(
        "--guidance",
        type=float,
        metavar="W",
        help="classifier-free guidance scale of the samples (default: the model's)",
    )
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing report")
    evaluate.add_argument(
        "--edits",
        action="store_true",
        help="measure edits instead: --n held-out synthetic subjects edited +10 and +20 years against their true "
        "follow-ups (edits.md, edits.json)",
    )

    export = subparser(subparsers, "export", "Export a model in another format.")
    export.add_argument("--model", required=True, metavar="M", help="model name or folder")
    export.add_argument("--format", choices=["monai-bundle"], default="monai-bundle", help="output format")
    export.add_argument("--output", "-o", required=True, type=output_path, metavar="DIR", help="output folder")
    export.add_argument("--overwrite", action="store_true", help="replace an existing folder")


def build_parser(covariates: Sequence[CovariateSpec] = ()) -> argparse.ArgumentParser:
    """Build the ``brainsynth`` argument parser with its subcommands.

    ``covariates`` are the covariate specs of the model the command names (its ``--model``): sample,
    traverse and interpolate get one flag per covariate; any covariate can also be given with ``--set``.
    """
    parser = argparse.ArgumentParser(
        prog="brainsynth",
        description="Explore 3D brain-MRI latent diffusion models: sample brains conditioned on sex, age, "
        "ventricular volume and brain volume, and save them as NIfTI with provenance.",
        epilog="Run 'brainsynth COMMAND --help' for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"brainsynth {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = subparser(subparsers, "sample", "Generate brains and save them as NIfTI with a JSON sidecar.")
    add_model(sample)
    flags = [(add_covariates(sample), "")]
    sample.add_argument("--seed", type=int, metavar="N", help="seed of the initial noise (default: random, recorded)")
    add_sampling(sample)
    add_output(sample, "output .nii/.nii.gz file (with --batch-size > 1: numbered files), or a folder")

    traverse = subparser(subparsers, "traverse", "Sweep one covariate with the same noise and other covariates.")
    add_model(traverse)
    traverse.add_argument(
        "--covariate",
        dest="sweep",
        required=True,
        metavar="NAME",
        help="covariate to sweep" + (f": {', '.join(c.name for c in covariates)}" if covariates else ""),
    )
    values = traverse.add_argument_group("values (either a list or a range)")
    values.add_argument("--values", metavar="V1,V2,...", help="comma-separated values in real units")
    values.add_argument("--start", type=float, metavar="A", help="first value")
    values.add_argument("--stop", type=float, metavar="B", help="last value")
    values.add_argument("--frames", type=int, metavar="N", help="number of values from start to stop")
    flags.append((add_covariates(traverse), ""))
    traverse.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the shared noise (default 0)")
    add_sampling(traverse)
    add_output(traverse, "a .nii/.nii.gz file (one 4D volume, frames last) or a folder (one file per frame)")

    interpolate = subparser(subparsers, "interpolate", "Interpolate between two seeds (and two covariate sets).")
    add_model(interpolate)
    interpolate.add_argument("--seed-a", type=int, required=True, metavar="N", help="seed of the first brain")
    interpolate.add_argument("--seed-b", type=int, required=True, metavar="N", help="seed of the last brain")
    interpolate.add_argument("--frames", type=int, default=8, metavar="N", help="number of brains (default 8)")
    flags.append((add_covariates(interpolate), ""))
    flags.append(
        (add_covariates(interpolate, suffix="-b", what=" at the end (default: the same as at the start)"), "-b")
    )
    add_sampling(interpolate)
    add_output(interpolate, "a .nii/.nii.gz file (one 4D volume, frames last) or a folder (one file per frame)")

    generate = subparser(subparsers, "generate", "Generate a dataset: one NIfTI + sidecar per row, resumable.")
    add_model(generate)
    generate.add_argument("--n", type=int, metavar="N", help="number of brains (or at most N rows of the table)")
    generate.add_argument(
        "--covariates", metavar="FILE.tsv", help="table with a column per covariate (optional id and seed columns)"
    )
    generate.add_argument("--seed", type=int, default=0, help="base seed: row i uses seed + i (default 0)")
    generate.add_argument("--shard", metavar="K/N", help="do shard K of N (default: the torchrun process's, or all)")
    generate.add_argument("--extrapolate", action="store_true", help="allow covariates beyond the training range")
    generate.add_argument(
        "--writers",
        type=int,
        default=2,
        metavar="W",
        help="threads that write brains while the next batch samples (default 2; 0 writes in the loop)",
    )
    add_sampling(generate)
    add_dtype(generate)
    generate.add_argument("--output", "-o", required=True, type=output_path, metavar="DIR", help="dataset folder")
    generate.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    add_audit_parser(subparsers, subparser)

    bench = subparser(subparsers, "benchmark", "Time the bundle's reference sampler against brainsynth's.")
    add_model(bench)
    bench.add_argument(
        "--random-weights",
        action="store_true",
        help="with --model ukb: the published architecture with random weights (timing only)",
    )
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    bench.add_argument("--steps", type=int, metavar="N", help="brainsynth's steps (default: the model's)")
    bench.add_argument("--scheduler", choices=list(SCHEDULERS), type=str.lower, help="brainsynth's scheduler")
    bench.add_argument("--runs", type=int, default=1, help="runs per side; the median is reported (default 1)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the shared noise (default 0)")
    bench.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="brainsynth samples N brains per call and reports time per brain (default 1)",
    )
    bench.add_argument(
        "--precision", choices=SAMPLING_PRECISIONS, help="brainsynth's network precision (default: the model's)"
    )
    bench.add_argument(
        "--weight-dtype",
        choices=list(PRECISIONS),
        default="float32",
        help="brainsynth's U-Net weight storage (default float32)",
    )
    bench.add_argument(
        "--decoding", choices=DECODING_MODES, default="auto", help="brainsynth's decoding (default auto)"
    )
    bench.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=False,
        choices=["default", "reduce-overhead", "max-autotune"],
        help="brainsynth's U-Net through torch.compile, optionally with a mode "
        "(reduce-overhead: CUDA graphs, for one brain at a time on a GPU)",
    )
    bench.add_argument(
        "--sweep",
        metavar="SPEC",
        help="instead: quality against DDIM-50 and time per brain for each solver and step count, "
        "e.g. 'ddim:10,20;dpm-solver++:10,15,20' (over --runs seeds)",
    )
    bench.add_argument("--json", metavar="FILE", help="also write the report as JSON")

    info = subparser(subparsers, "info", "Show the models found, their covariates and the devices available.")
    info.add_argument("--model", metavar="M", help="describe this model in detail")

    explore = subparser(
        subparsers,
        "explore",
        "Open napari with the brainsynth widgets and a model loaded "
        "(without a display or napari: write one brain as NIfTI, sidecar and PNG).",
    )
    explore.add_argument("--model", metavar="M", help="model name or folder (default: demo, if installed)")
    explore.add_argument(
        "--output",
        "-o",
        type=output_path,
        default="brainsynth_brain.nii.gz",
        metavar="PATH",
        help="where the brain goes when there is no display (default brainsynth_brain.nii.gz)",
    )
    explore.add_argument(
        "--screenshot", type=output_path, metavar="PNG", help="generate one brain, save a 3D screenshot and exit"
    )
    explore.add_argument("--seed", type=int, default=0, help="seed of the screenshot's brain (default 0)")

    serve = subparser(
        subparsers, "serve", "Serve the explorer as a web page (Voila): one session per browser tab, no notebook shown."
    )
    add_model(serve)
    serve.add_argument("--port", type=int, default=8866, metavar="P", help="port to listen on (default 8866)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="H",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 for every network interface, "
        "with no login: only on a network you trust)",
    )

    _add_training_commands(subparsers)

    edit = subparser(subparsers, "edit", "Edit a subject's scan: register it, invert it, change its covariates.")
    edit.add_argument("scan", metavar="SCAN.nii.gz", help="a T1w NIfTI of the model's kind (head or skull-stripped)")
    add_model(edit)
    flags.append((add_covariates(edit, what=" to change to"), ""))
    edit.add_argument(
        "--source",
        metavar="NAME=VALUE,...",
        help="the scan's own covariates (what is not given is measured where the model can, else refused by name)",
    )
    edit.add_argument(
        "--strength", type=float, default=0.5, metavar="S", help="share of the steps inverted, 0 to 1 (default 0.5)"
    )
    edit.add_argument("--steps", type=int, metavar="N", help="DDIM steps (default: the model's)")
    add_registration(edit)
    edit.add_argument("--device", default="auto", help="where the networks run (default auto)")
    edit.add_argument("--precision", choices=SAMPLING_PRECISIONS, help="network precision (default: the model's)")
    edit.add_argument(
        "--output",
        "-o",
        required=True,
        type=output_path,
        metavar="OUT.nii.gz",
        help="the edited scan on its own grid; the signed difference goes beside it as OUT_diff.nii.gz",
    )
    edit.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    edit.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    reconstruct = subparser(
        subparsers, "reconstruct", "The autoencoder's view of a subject's scan, with PSNR and SSIM."
    )
    reconstruct.add_argument("scan", metavar="SCAN.nii.gz", help="a T1w NIfTI of the model's kind")
    add_model(reconstruct)
    add_registration(reconstruct)
    reconstruct.add_argument("--device", default="auto", help="where the networks run (default auto)")
    reconstruct.add_argument("--output", "-o", required=True, type=output_path, metavar="OUT.nii.gz", help="output")
    reconstruct.add_argument("--overwrite", action="store_true", help="replace an existing output")

    download = subparser(subparsers, "download", "Download a published model's files.")
    download.add_argument("name", choices=["ukb"], help="ukb: the published UK Biobank model (about 2.3 GB)")
    download.add_argument(
        "--dir", type=output_path, metavar="FOLDER", help="where to put it (default: brainsynth's cache)"
    )
    for group, suffix in flags:  # last, so that a covariate never takes the flag of another option
        add_covariate_flags(group, covariates, suffix)
    return parser


def model_of(argv: Sequence[str]) -> str | None:
    """The ``--model`` a sample, traverse, interpolate or edit command line names (``"demo"`` by default), or
    ``None`` for the other commands (they take no covariate flags)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("command", nargs="?")
    early.add_argument("--model", default="demo")
    known, _ = early.parse_known_args(list(argv))
    return known.model if known.command in ("sample", "traverse", "interpolate", "edit") else None
