"""Writing files and folders so that a reader never sees them half-written.

Temporary files and folders are made private (mode 0600 / 0700) while they are written; once complete
they get the mode a plain ``open`` or ``mkdir`` would have given them (0666 / 0777 less the user's
umask, so 0644 / 0755 by default), or keep the mode of the file they replace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux ``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, and put it straight back
    os.umask(mask)
    return mask


def _final_mode(path: Path, default: int) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return default & ~current_umask()


#: Temporary files are named ``.NAME.PID@HOST.RANDOM.part``, so that a later run can tell those of
#: killed processes on this machine from those of live ones.
PART_SUFFIX = ".part"


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a system that cannot tell: keep its file
    return True


#: Folders this process has already cleaned: each is scanned once, not at every write (a dataset
#: folder of many thousand brains would otherwise be listed again for each one).
_CLEANED: set[Path] = set()


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed processes on this machine left in ``folder``.

    Returns the files removed. Files of live processes, of other machines and of unknown form are kept.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if os.name == "nt" or not folder.is_dir():  # os.kill(pid, 0) would end the process on Windows
        return removed
    owner = re.compile(rf"\.(\d+)@{re.escape(socket.gethostname())}\.[^.]+{re.escape(PART_SUFFIX)}$")
    for candidate in folder.glob(f".*{PART_SUFFIX}"):
        match = owner.search(candidate.name)
        if match and not _is_alive(int(match.group(1))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _clean_once(folder: Path) -> None:
    key = folder.resolve()
    if key not in _CLEANED:
        remove_stale_parts(folder)
        _CLEANED.add(key)


def _write_temporary(path: Path, data: bytes) -> str:
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=PART_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, _final_mode(path, 0o666))
    except OSError as exc:
        Path(temp_name).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # name the file the user asked for
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return temp_name


def atomic_write_files(files: Sequence[tuple[str | Path, bytes]]) -> None:
    """Write several files so that they appear together or not at all.

    Every file is written and synced to a temporary file beside its target first; only then are they
    renamed into place, in order. If any cannot be written (disk full, a folder in the way, Ctrl-C),
    none of them appears and no temporary file is left; leftovers of killed runs are removed first.
    Each file gets the mode of the file it replaces, or 0666 less the umask for a new one.
    """
    targets = [(Path(path), data) for path, data in files]
    temporaries: list[tuple[str, Path]] = []
    renamed: list[Path] = []
    try:
        for path, data in targets:
            _clean_once(path.parent)
            temporaries.append((_write_temporary(path, data), path))
        for temp_name, path in temporaries:
            os.replace(temp_name, path)
            renamed.append(path)
    except BaseException:
        for temp_name, _ in temporaries:
            Path(temp_name).unlink(missing_ok=True)
        if len(renamed) < len(targets):
            for path in renamed:
                path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place (see :func:`atomic_write_files`)."""
    atomic_write_files([(path, data)])


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """A JSON document as written by :func:`atomic_write_json`."""
    return (json.dumps(data, indent=2, default=_json_default) + "\n").encode()


def atomic_write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write a JSON document atomically."""
    atomic_write_bytes(path, json_bytes(data))


@contextmanager
def staged_directory(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target`` to fill; on success it replaces ``target``.

    On any error the temporary folder is removed and ``target`` is left as it was. Checking that
    ``target`` may be replaced is the caller's job.
    """
    target = Path(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~current_umask())
        if target.exists() and overwrite:
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
