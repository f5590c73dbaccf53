"""The machinery of the bad-input cases: a registry, a sandbox per case, and the two ways a user meets a
refusal (the command line and the API), each checked to be one line with nothing written.

``tests/test_bad_inputs.py`` holds the cases; ``python -m tests.bad_inputs`` writes ``docs/bad-inputs.md``
from them (the suite fails while that page differs from what the cases say).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainsynth.errors import BrainsynthError

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class Case:
    """One refused input: where a user meets it, what it is, a pattern its message must match."""

    surface: str
    what: str
    expected: str
    run: Callable[[Sandbox], str]

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.surface} {self.what}".lower()).strip("-")[:90]


CASES: list[Case] = []


def case(surface: str, what: str, expected: str) -> Callable[[Callable[[Sandbox], str]], Callable[[Sandbox], str]]:
    """Register a case: ``run(sandbox)`` returns the refusal's message (through :func:`cli` or :func:`api`)."""

    def register(run: Callable[[Sandbox], str]) -> Callable[[Sandbox], str]:
        CASES.append(Case(surface, what, expected, run))
        return run

    return register


class Sandbox:
    """A case's own folder, with copies of the shared inputs made on demand."""

    def __init__(self, folder: Path, sources: dict[str, Path]) -> None:
        self.folder = folder
        self._sources = sources

    def copy(self, name: str) -> Path:
        """A fresh copy of the shared input ``name`` (``model``, ``bundle``, ``cohort``, ``autoencoder``)."""
        target = self.folder / name
        if not target.exists():
            shutil.copytree(self._sources[name], target)
        return target

    def model(self) -> Path:
        return self.copy("model")

    def bundle(self) -> Path:
        return self.copy("bundle")

    def cohort(self) -> Path:
        return self.copy("cohort")

    def file(self, name: str, content: str | bytes = "") -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def edit_json(self, path: Path, change: Callable[[Any], Any]) -> Path:
        """Change the JSON file in place: ``change`` mutates the data (what it returns is ignored)."""
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
        return path

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(self.folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(self.folder.rglob("*"))
            if "__pycache__" not in p.parts
        }


class RefusalError(AssertionError):
    """A refusal that is not one clean line, or that wrote something."""


def _unchanged(sandbox: Sandbox, before: dict[str, tuple[int, int]], what: str) -> None:
    after = sandbox.snapshot()
    if after != before:
        added = sorted(set(after) - set(before))
        changed = sorted(k for k in before if k in after and before[k] != after[k])
        removed = sorted(set(before) - set(after))
        raise RefusalError(f"{what} changed files: added {added}, changed {changed}, removed {removed}")


def cli(sandbox: Sandbox, *argv: str | Path, env: dict[str, str] | None = None) -> str:
    """Run ``brainsynth ARGV`` in-process in the sandbox; it must exit 1 or 2 with one error line."""
    from brainsynth.cli import main

    before = sandbox.snapshot()
    stderr, stdout = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    cwd = os.getcwd()
    try:
        os.environ.update(env or {})
        os.chdir(sandbox.folder)
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                status = main([str(a) for a in argv])
            except SystemExit as exit_:  # argparse's usage errors
                status = exit_.code
    finally:
        os.chdir(cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = stderr.getvalue()
    if status not in (1, 2):
        raise RefusalError(f"brainsynth {argv[0]} exited {status}, not 1 or 2\n{stdout.getvalue()}\n{text}")
    if "Traceback" in text:
        raise RefusalError(f"brainsynth {argv[0]} printed a traceback:\n{text}")
    errors = [line for line in text.splitlines() if re.match(r"brainsynth( [\w-]+)*: error: ", line)]
    if len(errors) != 1:
        raise RefusalError(f"brainsynth {argv[0]} printed {len(errors)} error lines:\n{text}")
    _unchanged(sandbox, before, f"brainsynth {argv[0]}")
    return errors[0]


def api(sandbox: Sandbox, call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Call ``call(*args, **kwargs)``; it must raise a :class:`BrainsynthError` of one line, writing nothing."""
    before = sandbox.snapshot()
    try:
        call(*args, **kwargs)
    except BrainsynthError as exc:
        message = str(exc)
        if "\n" in message or not message:
            raise RefusalError(f"{type(exc).__name__} is not one line: {message!r}") from exc
        _unchanged(sandbox, before, getattr(call, "__name__", "the call"))
        return f"{type(exc).__name__}: {message}"
    raise RefusalError(f"{getattr(call, '__name__', 'the call')} accepted the input")


def shown(message: str, sandbox: Sandbox) -> str:
    """A message as the docs show it: the sandbox's path replaced by ``…``, and hashes computed from files
    (they follow the bytes of random test weights) by ``<hash>``."""
    message = message.replace(str(sandbox.folder), "…").replace(os.path.realpath(sandbox.folder), "…")
    return re.sub(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{12,64}\b", "<hash>", message)


def table(messages: dict[str, str]) -> str:
    """The docs page: one row per case, grouped by surface, in the cases' order."""
    lines = [
        "# Bad inputs and what brainsynth says",
        "",
        "Every input below is refused before any compute and before any file is written, with one line",
        "naming the parameter, what is allowed and what was given (the command line exits with status 1,",
        "or 2 for a usage error). The page is generated from the cases in `tests/test_bad_inputs.py`",
        "(`python -m tests.bad_inputs`); the test suite runs every case and fails while this page differs.",
        "",
        f"{len(messages)} cases.",
    ]
    surface = None
    for item in CASES:
        if item.id not in messages:
            continue
        if item.surface != surface:
            surface = item.surface
            lines += ["", f"## {surface}", "", "| input | message |", "| --- | --- |"]
        message = messages[item.id].replace("|", "\\|")
        lines.append(f"| {item.what} | `{message}` |" if "`" not in message else f"| {item.what} | {message} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - writes the docs page
    import subprocess
    import sys

    sys.exit(
        subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_bad_inputs.py"],
            env={**os.environ, "BRAINSYNTH_WRITE_BAD_INPUTS": "1"},
        )
    )
