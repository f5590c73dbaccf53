"""The options several commands share: the model, its covariates, the sampling settings, the output."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import Any

from brainsynth.config import SAMPLING_PRECISIONS
from brainsynth.covariates import CovariateSpec
from brainsynth.devices import DEVICE_CHOICES, PRECISIONS
from brainsynth.errors import InvalidParameterError
from brainsynth.files.nifti import OUTPUT_DTYPES
from brainsynth.files.paths import check_output_name
from brainsynth.loading.hub import MODEL_NAMES
from brainsynth.sampling.decoding import DECODING_MODES
from brainsynth.sampling.schedulers import SCHEDULERS
from brainsynth.sampling.timesteps import TIMESTEP_SPACINGS

#: Where a covariate flag stores its value: ``COVARIATE_DEST.format(suffix, name)``.
COVARIATE_DEST = "covariate{}:{}"


def add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="demo",
        metavar="M",
        help=f"model name ({', '.join(MODEL_NAMES)}) or a model/bundle folder (default: demo)",
    )


def add_registration(parser: argparse.ArgumentParser) -> None:
    """How a subject's scan is brought into the model's space (``edit``, ``reconstruct``)."""
    parser.add_argument(
        "--transform", choices=("rigid", "affine"), default="rigid", help="registration (default rigid)"
    )
    parser.add_argument(
        "--reference",
        metavar="NIFTI",
        help="register to this template of the model's space instead of the model's own sample "
        "(e.g. the template its training data were registered to)",
    )


def add_covariates(parser: argparse.ArgumentParser, suffix: str = "", what: str = "") -> argparse._ArgumentGroup:
    """The group of covariate options; the model's own flags are added to it last (:func:`_add_covariate_flags`)."""
    group = parser.add_argument_group(f"covariates{what} (real units; defaults from the model)")
    if not suffix:
        group.add_argument(
            "--set",
            dest="assignments",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="any covariate by name, e.g. --set c0=0.5; repeat for several",
        )
        group.add_argument(
            "--extrapolate",
            action="store_true",
            help="allow values beyond the training range (recorded in the sidecar)",
        )
    return group


def add_covariate_flags(group: argparse._ArgumentGroup, covariates: Sequence[CovariateSpec], suffix: str) -> None:
    """One flag per covariate of the model (``--age``, ``--lesion-volume``); a name that would clash
    with another option of the command is left to ``--set``."""
    for spec in covariates:
        default = "" if spec.default is None or suffix else f"; default {spec.default}"
        options: dict[str, Any] = {
            "dest": COVARIATE_DEST.format(suffix, spec.name),
            "help": f"{spec.label}: {spec.describe_range()}{default}",
        }
        if spec.categorical:
            options["metavar"] = "{" + ",".join(spec.choices) + "}"
        else:
            options.update(type=float, metavar=(spec.unit or "value").upper().replace(" ", "_"))
        with contextlib.suppress(argparse.ArgumentError):
            group.add_argument(f"--{spec.name.replace('_', '-')}{suffix}", **options)


def add_sampling(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--steps", type=int, metavar="N", help="denoising steps (default: the model's)")
    group.add_argument(
        "--scheduler",
        choices=list(SCHEDULERS),
        type=str.lower,
        help="reverse-process solver (default: the model's; the demo model's is unipc, 8 steps)",
    )
    group.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity 0-1 (default 0)")
    group.add_argument(
        "--timestep-spacing",
        choices=list(TIMESTEP_SPACINGS),
        help="which timesteps ddim and ddpm evaluate the U-Net at: leading (the published model's "
        "980, 960, ..., 0 for 50 steps), linspace (MONAI 1.6's 999, 979, ..., 0) or trailing "
        "(default leading)",
    )
    group.add_argument(
        "--device",
        default="auto",
        metavar="{" + ",".join(DEVICE_CHOICES) + "}",
        help="compute device: auto, cpu, cuda, cuda:N or mps (default auto)",
    )
    group.add_argument(
        "--batch-size", type=int, default=1, metavar="N", help="brains passed through the networks together (default 1)"
    )
    group.add_argument(
        "--precision",
        choices=SAMPLING_PRECISIONS,
        help="network precision: float32 (exact), bfloat16 (CPU or GPU), float16 (GPU) or auto "
        "(bfloat16 on CPUs with native bfloat16, else float32) (default: the model's)",
    )
    group.add_argument(
        "--weight-dtype",
        choices=list(PRECISIONS),
        default="float32",
        help="store the U-Net's weights in this type (bfloat16 halves its memory; needs the same --precision)",
    )
    group.add_argument(
        "--guidance",
        type=float,
        metavar="W",
        help="classifier-free guidance scale, 1-20 (default: the model's); above 1 follows the "
        "covariates more closely, for models trained with conditioning dropout",
    )
    group.add_argument(
        "--decoding",
        choices=DECODING_MODES,
        default="auto",
        help="decode in one piece (full) or slab by slab with bounded memory (split); auto picks "
        "from the free memory (default auto)",
    )


def output_path(text: str) -> str:
    """An ``--output`` value checked as a name (see :func:`brainsynth.files.paths.check_output_name`)."""
    try:
        check_output_name(text, "path")
    except InvalidParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_output(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--output", "-o", required=True, type=output_path, metavar="PATH", help=what)
    add_dtype(group)
    group.add_argument("--overwrite", action="store_true", help="replace existing files")
    group.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def number_or_text(text: str) -> float | str:
    """``text`` as a number where it reads as one, else as it is."""
    try:
        return float(text)
    except ValueError:
        return text


def covariate_values(args: argparse.Namespace, suffix: str = "") -> dict[str, Any]:
    """The covariates a command line gives: the model's own flags (with ``suffix``) and ``--set``."""
    values: dict[str, Any] = {}
    prefix = COVARIATE_DEST.format(suffix, "")
    for dest, value in vars(args).items():
        if dest.startswith(prefix) and value is not None:
            values[dest.removeprefix(prefix)] = int(value) if isinstance(value, str) and value.isdigit() else value
    for item in getattr(args, "assignments", []) if not suffix else []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise InvalidParameterError(f"--set must look like NAME=VALUE (got {item!r})")
        values[name.strip().replace("-", "_")] = number_or_text(text.strip())
    return values


def add_dtype(group) -> None:
    """``--dtype``: the stored data type of written volumes."""
    group.add_argument(
        "--dtype",
        choices=OUTPUT_DTYPES,
        default="float32",
        help="stored data type: float32, int16 (about half the size, 1/32767 steps) or uint8 (default float32)",
    )
