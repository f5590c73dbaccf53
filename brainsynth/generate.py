"""Batch generation of synthetic datasets: one NIfTI and sidecar per table row, resumable and shardable.

Rows come from a covariates table (TSV with a column per covariate, optional ``id`` or
``participant_id`` and ``seed`` columns) or are drawn uniformly over the training ranges. Brains
already written are skipped, so an interrupted run continues where it stopped; ``shard=(k, n)`` takes
rows ``k - 1``, ``k - 1 + n``, ... so n processes or machines share the work (under ``torchrun`` each
process takes its own shard).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth.atomic import atomic_write_bytes
from brainsynth.errors import InvalidParameterError
from brainsynth.model import LatentDiffusionModel
from brainsynth.nifti import sidecar_path

ID_COLUMNS = ("id", "participant_id")


@dataclass(frozen=True)
class Row:
    """One brain to generate."""

    identifier: str
    covariates: dict[str, Any]
    seed: int


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` to (K, N); None means the torchrun process's shard, or (1, 1) alone."""
    if text is None:
        return int(os.environ.get("RANK", "0")) + 1, int(os.environ.get("WORLD_SIZE", "1"))
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InvalidParameterError(f"shard must look like K/N, e.g. 2/4 (got {text!r})") from None
    if not 1 <= k <= n:
        raise InvalidParameterError(f"shard K/N needs 1 <= K <= N (got {text!r})")
    return k, n


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: str | Path, model: LatentDiffusionModel, seed: int) -> list[Row]:
    """Rows of a covariates table; unknown columns are refused, missing covariates take defaults."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InvalidParameterError(f"covariates table {path} does not exist")
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream, delimiter="\t")
        columns = reader.fieldnames or []
        table = list(reader)
    known = set(model.config.covariate_names) | set(ID_COLUMNS) | {"seed"}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise InvalidParameterError(
            f"covariates table {path.name} has unknown column(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(model.config.covariate_names)}, id or participant_id, seed"
        )
    rows = []
    for index, entry in enumerate(table):
        identifier = next((entry[c] for c in ID_COLUMNS if entry.get(c)), f"brain_{index:06d}")
        covariates = {k: _number(v) for k, v in entry.items() if k in model.config.covariate_names and v != ""}
        rows.append(Row(identifier, covariates, int(float(entry["seed"])) if entry.get("seed") else seed + index))
    return rows


def draw_rows(model: LatentDiffusionModel, n: int, seed: int) -> list[Row]:
    """n rows with covariates drawn uniformly over their training ranges (categories equally likely)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n):
        covariates = {
            s.name: (s.choices[int(rng.integers(len(s.choices)))] if s.categorical
                     else round(float(rng.uniform(min(s.low, s.high), max(s.low, s.high))), 3))
            for s in model.config.covariates
        }
        rows.append(Row(f"brain_{index:06d}", covariates, seed + index))
    return rows


def write_rows_table(rows: list[Row], path: Path, model: LatentDiffusionModel) -> None:
    """Write the rows as a covariates table (the record of what was asked for)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["id", "seed", *model.config.covariate_names])
    for row in rows:
        writer.writerow([row.identifier, row.seed, *(row.covariates.get(n, "") for n in model.config.covariate_names)])
    atomic_write_bytes(path, buffer.getvalue().encode())


def generate_dataset(
    model: LatentDiffusionModel,
    output: str | Path,
    *,
    n: int | None = None,
    covariates: str | Path | None = None,
    seed: int = 0,
    shard: tuple[int, int] = (1, 1),
    batch_size: int = 1,
    extrapolate: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **sampling: Any,
) -> dict[str, int]:
    """Generate a dataset into ``output``; returns counts of rows ``written``, ``skipped`` and ``total``.

    Parameters
    ----------
    model : LatentDiffusionModel
        The model.
    output : str or Path
        Dataset folder (created if its parent exists).
    n : int, optional
        Number of brains; with ``covariates``, at most this many rows are used.
    covariates : str or Path, optional
        Covariates table (TSV). Without it, ``n`` rows are drawn over the training ranges.
    seed : int
        Base seed: row ``i`` without a ``seed`` column uses ``seed + i``.
    shard : (int, int)
        This worker's shard ``(k, n)``.
    batch_size : int
        Brains per network pass.
    extrapolate : bool
        Allow covariates beyond the training range.
    progress : callable, optional
        Called as ``progress(done, todo)`` after each batch.
    **sampling
        ``steps``, ``scheduler``, ``eta``, ``device``.
    """
    if covariates is None and (n is None or n < 1):
        raise InvalidParameterError("give n (a positive number of brains) or a covariates table")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidParameterError(f"n must be a positive integer (got {n!r})")
    output = Path(output).expanduser()
    if not output.parent.is_dir():
        raise InvalidParameterError(f"output folder {str(output.parent)!r} does not exist; create it first")
    rows = read_rows(covariates, model, seed) if covariates is not None else draw_rows(model, n or 0, seed)
    rows = rows[:n] if n is not None else rows
    names = [row.identifier for row in rows]
    if len(set(names)) != len(names):
        raise InvalidParameterError("the covariates table repeats ids; every row needs its own id")
    output.mkdir(exist_ok=True)
    if shard[0] == 1:
        write_rows_table(rows, output / "covariates.tsv", model)
    mine = rows[shard[0] - 1 :: shard[1]]
    todo = [r for r in mine if not _done(output / f"{r.identifier}.nii.gz")]
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        result = model.sample_batch([r.covariates for r in batch], [r.seed for r in batch], batch_size=batch_size,
                                    extrapolate=extrapolate, **sampling)
        for index, row in enumerate(batch):
            result[index].save(output / f"{row.identifier}.nii.gz", overwrite=True)
        if progress is not None:
            progress(min(start + batch_size, len(todo)), len(todo))
    return {"written": len(todo), "skipped": len(mine) - len(todo), "total": len(rows)}


def _done(path: Path) -> bool:
    return path.is_file() and sidecar_path(path).is_file()
