"""The ``brainsynth`` command line.

User errors end with a one-line message and exit status 1 (2 for bad usage), with no traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from brainsynth.cli.commands import COMMANDS
from brainsynth.cli.parser import build_parser, model_of
from brainsynth.covariates import CovariateSpec
from brainsynth.errors import BrainsynthError


def _covariates_of(model: str | None) -> tuple[tuple[CovariateSpec, ...], BrainsynthError | None]:
    """The covariates of the model a command names, read from its configuration alone, or why they
    cannot be read (none for commands that take no model)."""
    if model is None:
        return (), None
    from brainsynth.loading.names import read_model_config

    try:
        return read_model_config(model).covariates, None
    except BrainsynthError as exc:
        return (), exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    covariates, unreadable = _covariates_of(model_of(argv))
    parser = build_parser(covariates)
    args, unknown = parser.parse_known_args(argv)
    if unknown and unreadable is not None:  # covariate flags of a model that cannot be read: say why
        print(f"brainsynth {args.command}: error: {unreadable}", file=sys.stderr)
        return 1
    if unknown:
        parser.parse_args(argv)  # exits with argparse's usage message
    try:
        return COMMANDS[args.command](args)
    except BrainsynthError as exc:
        print(f"brainsynth {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"brainsynth {args.command}: cancelled; no file was left half-written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``brainsynth info | head``): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:  # a full disk, a read-only folder, a file that vanished: one line, not a traceback
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"brainsynth {args.command}: error: cannot write or read{where}: {exc.strerror or exc}; "
            "no file was left half-written",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
