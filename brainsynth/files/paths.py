"""Output paths checked as names before any work: one check for every file and folder brainsynth writes.

:func:`check_output_name` refuses what no file system takes or what would surprise: an empty name
(which would write into the current folder), NUL and other control characters (terminal escapes among
them), a name longer than file systems allow, a path inside a file, and a parent folder that does not
exist. The NIfTI, folder and training-run checks start with it, and so does every ``--output``.
"""

from __future__ import annotations

import os
from pathlib import Path

from brainsynth.errors import InvalidParameterError

#: Longest file or folder name (bytes) and longest path most file systems accept.
NAME_MAX = 255
PATH_MAX = 4096


def _shown(text: str) -> str:
    """A path for an error message: control characters escaped, long ones cut."""
    text = repr(text)[1:-1]
    return text if len(text) <= 80 else text[:60] + "..." + text[-17:]


def check_output_name(path: str | Path, name: str = "output") -> Path:
    """Check that ``path`` can name a new file or folder; return it with ``~`` expanded.

    Parameters
    ----------
    path : str or Path
        The output.
    name : str
        The parameter, for messages (``"--output"``).

    Raises
    ------
    InvalidParameterError
        Naming the parameter, what is allowed and what was given.
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else None
    if not isinstance(text, str):
        raise InvalidParameterError(f"{name} must be a path (got {type(path).__name__})")
    if not text.strip():
        raise InvalidParameterError(f"{name} must name a file or folder (got {text!r})")
    bad = sorted({c for c in text if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise InvalidParameterError(
            f"{name} must not hold control characters such as NUL, tab or terminal escapes (got '{_shown(text)}')"
        )
    expanded = Path(text).expanduser()
    long = [part for part in expanded.parts if len(os.fsencode(part)) > NAME_MAX]
    if long:
        raise InvalidParameterError(
            f"{name} has a name of {len(os.fsencode(long[0]))} bytes ('{_shown(long[0])}'); file systems allow "
            f"{NAME_MAX}"
        )
    if len(os.fsencode(str(expanded.absolute()))) > PATH_MAX:
        raise InvalidParameterError(f"{name} is longer than the {PATH_MAX} bytes a path may have")
    for parent in expanded.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidParameterError(
                    f"{name} '{_shown(text)}' lies inside '{_shown(str(parent))}', which is a file"
                )
            break
    if not expanded.parent.is_dir():
        raise InvalidParameterError(f"{name} folder '{_shown(str(expanded.parent))}' does not exist; create it first")
    return expanded
