"""Tab-separated tables read strictly: every row the header's width, every column once, UTF-8 text.

The covariates table of ``generate`` and a training folder's ``participants.tsv`` are read here, so
both refuse the same things with the same words: text that is not UTF-8 (naming the line), NUL
characters, empty or repeated column names, and rows with fewer or more fields than the header. The
byte-order mark that Excel writes before UTF-8 text is accepted.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from brainsynth.errors import BrainsynthError, InvalidParameterError
from brainsynth.files.schema import shown, utf8_text

#: What an id in a table may be, as it names files: letters, digits, ``.``, ``_``, ``-``; at most 128.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Largest table read (bytes): a covariates table of a million rows is well under it.
MAX_TABLE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Table:
    """A table's columns and rows; ``lines[i]`` is the file's line number of ``rows[i]`` (the header is 1)."""

    path: Path
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]
    lines: tuple[int, ...]


def _text(path: Path, what: str, error: type[BrainsynthError]) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise error(f"{what} {path} is {size} bytes; at most {MAX_TABLE_BYTES} are read")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        return utf8_text(data)
    except ValueError as exc:
        raise error(
            f"{what} {path} is {exc}; save it as UTF-8 (in Excel: Save As, 'UTF-8 CSV', then use tabs)"
        ) from exc


def read_table(path: str | Path, what: str = "table", *, error: type[BrainsynthError] = InvalidParameterError) -> Table:
    """Read a tab-separated table with a header line.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the table is, for messages (``"covariates table"``).
    error : type
        The error class raised.

    Raises
    ------
    BrainsynthError
        Of class ``error``, naming the file, the line and what is wrong.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise error(f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file")
    text = _text(path, what, error)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise error(f"{what} {path} holds a NUL character (line {line}); it is not a text table")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True)
    try:
        records = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise error(f"{what} {path} is not a readable table (line {reader.line_num}: {exc})") from exc
    records = [(line, row) for line, row in records if any(field.strip() for field in row)]  # blank lines
    if not records:
        raise error(f"{what} {path} is empty; it needs a header line of column names")
    _, header = records[0]
    while len(header) > 1 and not header[-1].strip():
        header = header[:-1]  # empty fields after the last name, as spreadsheets write them
    columns = tuple(name.strip() for name in header)
    if "" in columns:
        raise error(f"{what} {path}: column {columns.index('') + 1} of the header has no name")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise error(f"{what} {path} names column(s) {', '.join(repeated)} more than once; each column once")
    rows, lines = [], []
    for line, row in records[1:]:
        while len(row) > len(columns) and not row[-1].strip():
            row = row[:-1]  # empty fields after the last column, as spreadsheets write them
        if len(row) != len(columns):
            raise error(
                f"{what} {path} line {line} has {len(row)} field(s) but the header has {len(columns)} "
                f"({', '.join(columns)}); first field {shown(row[0] if row else '')}"
            )
        rows.append({c: v.strip() for c, v in zip(columns, row, strict=True)})
        lines.append(line)
    return Table(path, columns, tuple(rows), tuple(lines))
