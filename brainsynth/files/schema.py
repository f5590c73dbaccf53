"""Settings files read as data: JSON and YAML read with one clear error, values checked by type and range.

Every file a user hands over (a model's ``model.json``, a bundle's ``inference.json`` and
``large_files.yml``, a training config, a sidecar) is read through :func:`read_json` or
:func:`read_yaml`, so a file that is missing, not UTF-8, not JSON or not the kind of value expected
gives one line naming the file and what is wrong. :class:`Checks` collects what is wrong with the
values in it, so that one error names every problem, before anything is built from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brainsynth.errors import BrainsynthError, ModelLoadError

#: How many characters of a bad value an error message shows.
SHOWN = 60


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def kind_of(value: Any) -> str:
    """The JSON name of a value's kind (``a list``, ``null``), for error messages."""
    names = {dict: "an object", list: "a list", tuple: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def utf8_text(data: bytes) -> str:
    """``data`` decoded as UTF-8 (a byte-order mark, as some editors write, is accepted).

    Raises
    ------
    ValueError
        ``not UTF-8 text (line L, byte 0xNN)``, naming where the first undecodable byte stands.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"not UTF-8 text (line {line}, byte {data[exc.start]:#04x})") from exc


def _read_text(path: Path, what: str, error: type[BrainsynthError]) -> str:
    try:
        return utf8_text(path.read_bytes())
    except ValueError as exc:
        raise error(f"{path} is not a readable {what}: it is {exc}") from exc
    except OSError as exc:
        raise error(f"{path} is not a readable {what}: {exc.strerror or exc}") from exc


def _expect(data: Any, path: Path, what: str, expected: type | None, error: type[BrainsynthError]) -> Any:
    if expected is not None and not isinstance(data, expected):
        wanted = kind_of(expected())
        raise error(f"{path} is not a readable {what}: it must hold {wanted} (got {kind_of(data)})")
    return data


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML ({str(exc).splitlines()[0]})") from exc


def read_json(
    path: str | Path, what: str, *, expected: type | None = dict, error: type[BrainsynthError] = ModelLoadError
) -> Any:
    """Read a JSON file, refusing one that is unreadable, not UTF-8, not JSON or not of ``expected`` kind.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file is, for the message (``"model manifest"``).
    expected : type or None
        The kind of value the file must hold (``dict``, ``list``); ``None`` for any.
    error : type
        The error class raised.
    """
    return _read(Path(path), what, _parse_json, expected, error)


def read_yaml(
    path: str | Path, what: str, *, expected: type | None = dict, error: type[BrainsynthError] = ModelLoadError
) -> Any:
    """Read a YAML file as plain data (``yaml.safe_load``), with the checks of :func:`read_json`."""
    return _read(Path(path), what, _parse_yaml, expected, error)


def _read(path: Path, what: str, parse, expected: type | None, error: type[BrainsynthError]) -> Any:
    text = _read_text(path, what, error)
    try:
        data = parse(text)
    except ValueError as exc:
        raise error(f"{path} is not a readable {what}: {exc}") from exc
    return _expect(data, path, what, expected, error)


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer (a boolean is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (a boolean is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class Checks:
    """Problems found in a set of values, collected so that one error names them all.

    Each method checks one value, records a problem naming ``where`` it is, what is allowed and what
    it is, and returns whether the value passed.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __bool__(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> bool:
        """Record a problem; return ``False``."""
        self.problems.append(problem)
        return False

    def integer(self, value: Any, where: str, low: int | None = None, high: int | None = None) -> bool:
        """An integer, between ``low`` and ``high`` where they are given."""
        if is_integer(value) and (low is None or value >= low) and (high is None or value <= high):
            return True
        allowed = "an integer" + _range_text(low, high)
        return self.add(f"{where} must be {allowed} (got {shown(value)})")

    def number(
        self, value: Any, where: str, low: float | None = None, high: float | None = None, *, above: bool = False
    ) -> bool:
        """A finite number, at least ``low`` (above it with ``above``) and at most ``high``."""
        fits = is_number(value) and (low is None or (value > low if above else value >= low))
        if fits and (high is None or value <= high):
            return True
        allowed = "a finite number" + (f" above {low:g}" if above and low is not None else "")
        allowed += _range_text(None if above else low, high)
        return self.add(f"{where} must be {allowed} (got {shown(value)})")

    def text(self, value: Any, where: str, choices: Sequence[str] | None = None) -> bool:
        """A string, one of ``choices`` where they are given."""
        if isinstance(value, str) and (choices is None or value in choices):
            return True
        allowed = f"one of {', '.join(choices)}" if choices is not None else "a string"
        return self.add(f"{where} must be {allowed} (got {shown(value)})")

    def mapping(self, value: Any, where: str) -> bool:
        """A mapping (a JSON object)."""
        return isinstance(value, Mapping) or self.add(f"{where} must be an object (got {kind_of(value)})")

    def integers(self, value: Any, where: str, length: int, low: int = 1, high: int | None = None) -> bool:
        """A list of ``length`` integers in range."""
        if not isinstance(value, list | tuple) or len(value) != length:
            return self.add(f"{where} must be a list of {length} integers (got {shown(value)})")
        if all(is_integer(v) and v >= low and (high is None or v <= high) for v in value):
            return True
        return self.add(f"{where} must hold integers{_range_text(low, high)} (got {shown(list(value))})")

    def known_keys(self, data: Mapping[str, Any], where: str, known: Sequence[str]) -> bool:
        """Only keys in ``known``."""
        unknown = [str(k) for k in data if k not in known]
        if not unknown:
            return True
        return self.add(f"{where} has unknown fields {', '.join(unknown)[:SHOWN]} (known: {', '.join(known)})")

    def raise_if_any(self, prefix: str, error: type[BrainsynthError] = ModelLoadError) -> None:
        """Raise ``error`` naming every problem after ``prefix``, if there is any."""
        if self.problems:
            raise error(f"{prefix}: " + "; ".join(self.problems))


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    if low is not None:
        return f" of at least {low:g}"
    if high is not None:
        return f" of at most {high:g}"
    return ""
