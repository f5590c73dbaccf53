"""What a command may replace: only a folder of its own kind that brainsynth made, never one of its inputs.

Every folder brainsynth makes holds a marker file by which it is recognised (a training run its
``run.json``, a model folder its ``model.json``, ...). ``--overwrite`` replaces a folder only when it
holds the marker of what the command makes, and never a folder that is or holds one of the same
command's inputs. Every check happens before any work and before anything is deleted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from brainsynth.errors import InvalidParameterError, OutputExistsError
from brainsynth.files.paths import check_output_name

#: Per kind of output folder: the file brainsynth writes into it and recognises it by.
FOLDER_MARKERS = {
    "cohort": "cohort.json",
    "training run": "run.json",
    "model folder": "model.json",
    "bundle": "configs/brainsynth.json",
}


def _holds(folder: Path, path: Path) -> bool:
    folder, path = folder.expanduser().resolve(), path.expanduser().resolve()
    return folder == path or folder in path.parents


def check_not_an_input(output: str | Path, inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse an output that is or holds one of the command's inputs (replacing it would delete the input).

    An output inside an input folder is allowed: writing or replacing it leaves the input as it was.

    Parameters
    ----------
    output : str or Path
        The folder the command would write (or replace).
    inputs : mapping
        Input name (as the user gave it, e.g. ``"--data"``) to path; ``None`` and names that are not
        paths on disk are passed over.

    Raises
    ------
    InvalidParameterError
        Naming the input.
    """
    for name, path in inputs.items():
        if path is None or not Path(path).expanduser().exists():
            continue
        if _holds(Path(output), Path(path)):
            raise InvalidParameterError(
                f"--output {str(output)!r} is or holds {name} {str(path)!r}, an input of this command; give "
                "another output folder"
            )


def check_replaceable(
    output: str | Path, kind: str, *, overwrite: bool, inputs: Mapping[str, str | Path | None] | None = None
) -> Path:
    """Check, before any work, that ``output`` may receive a new ``kind`` folder.

    A missing or empty folder always may. An existing one needs ``overwrite`` and must hold the
    marker of ``kind`` (see :data:`FOLDER_MARKERS`).

    Raises
    ------
    InvalidParameterError
        If the parent folder is missing, ``output`` is a file or an input, or it holds something
        brainsynth did not make as a ``kind``.
    OutputExistsError
        If ``output`` holds a ``kind`` folder and ``overwrite`` is False.
    """
    output = check_output_name(output, "--output")
    check_not_an_input(output, inputs or {})
    if output.exists() and not output.is_dir():
        raise InvalidParameterError(f"--output {str(output)!r} is a file; give a folder name")
    if not os.access(output.parent, os.W_OK):
        raise InvalidParameterError(f"output folder {str(output.parent)!r} is not writable")
    if not output.exists() or not any(output.iterdir()):
        return output
    if not overwrite:
        raise OutputExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it")
    marker = FOLDER_MARKERS[kind]
    if not (output / marker).is_file():
        raise InvalidParameterError(
            f"{output} is not a {kind} that brainsynth made (it has no {marker}); --overwrite replaces only "
            f"that, so nothing was deleted: give another output folder"
        )
    return output
