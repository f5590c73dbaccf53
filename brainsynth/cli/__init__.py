"""The ``brainsynth`` command line.

User errors end with a one-line message and exit status 1 (2 for bad usage), with no traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from brainsynth.cli.commands import COMMANDS
from brainsynth.cli.parser import build_parser
from brainsynth.errors import BrainsynthError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
