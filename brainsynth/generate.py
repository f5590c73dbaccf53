"""Batch generation of synthetic datasets: one NIfTI and sidecar per table row, resumable and shardable.

Rows come from a covariates table (TSV with a column per covariate, optional ``id`` or
``participant_id`` and ``seed`` columns) or are drawn uniformly over the training ranges. Brains
already written are skipped, so an interrupted run continues where it stopped; ``shard=(k, n)`` takes
rows ``k - 1``, ``k - 1 + n``, ... so n processes or machines share the work (under ``torchrun`` each
process takes its own shard).
"""

from __future__ import annotations

import csv
import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth.covariates import resolve_covariates
from brainsynth.dataset_card import write_card
from brainsynth.errors import InvalidParameterError
from brainsynth.files.atomic import atomic_write_bytes
from brainsynth.files.background import BackgroundWriter, check_writers
from brainsynth.files.nifti import check_dtype, sidecar_path
from brainsynth.files.paths import check_output_name
from brainsynth.files.tables import SAFE_ID, read_table
from brainsynth.model import LatentDiffusionModel
from brainsynth.progress import WorkCallback, item_steps, report
from brainsynth.sampling.noise import check_seed

ID_COLUMNS = ("id", "participant_id")
#: The record of what a dataset folder was asked for.
RECORD = "covariates.tsv"


@dataclass(frozen=True)
class Row:
    """One brain to generate."""

    identifier: str
    covariates: dict[str, Any]
    seed: int


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` to (K, N); None means the torchrun process's shard, or (1, 1) alone."""
    if text is None:
        rank, world = (_environment_integer(name, default) for name, default in (("RANK", 0), ("WORLD_SIZE", 1)))
        if not 0 <= rank < world:
            raise InvalidParameterError(
                f"RANK must be from 0 to WORLD_SIZE - 1 = {world - 1} (got RANK={rank}, WORLD_SIZE={world}); "
                "torchrun sets both, or give --shard K/N"
            )
        return rank + 1, world
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InvalidParameterError(f"shard must look like K/N, e.g. 2/4 (got {text!r})") from None
    return check_shard((k, n))


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    """Check a shard ``(k, n)``: integers with ``1 <= k <= n``.

    Raises
    ------
    InvalidParameterError
        Naming the shard.
    """
    if (
        not isinstance(shard, tuple | list)
        or len(shard) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        or not 1 <= shard[0] <= shard[1]
    ):
        raise InvalidParameterError(f"shard K/N needs whole numbers with 1 <= K <= N (got {shard!r})")
    return int(shard[0]), int(shard[1])


def _environment_integer(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidParameterError(
            f"environment variable {name} must be a whole number, as torchrun sets it (got {text[:40]!r})"
        ) from None


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: str | Path, model: LatentDiffusionModel, seed: int) -> list[Row]:
    """Rows of a covariates table; unknown columns are refused, missing covariates take defaults."""
    table = read_table(path, "covariates table")
    known = set(model.config.covariate_names) | set(ID_COLUMNS) | {"seed"}
    unknown = [c for c in table.columns if c not in known]
    if unknown:
        raise InvalidParameterError(
            f"covariates table {table.path.name} has unknown column(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(model.config.covariate_names)}, id or participant_id, seed"
        )
    if all(c in table.columns for c in ID_COLUMNS):
        raise InvalidParameterError(
            f"covariates table {table.path.name} has both an id and a participant_id column; keep one"
        )
    rows = []
    for index, entry in enumerate(table.rows):
        identifier = next((entry[c] for c in ID_COLUMNS if entry.get(c)), f"brain_{index:06d}")
        covariates = {k: _number(v) for k, v in entry.items() if k in model.config.covariate_names and v != ""}
        rows.append(Row(identifier, covariates, _row_seed(entry.get("seed"), seed + index, index, table.path.name)))
    return rows


def _row_seed(text: str | None, default: int, index: int, table: str) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameterError(
            f"row {index + 1} of {table}: seed must be a whole number from 0 to 2**63-1 (got {text!r})"
        ) from None
    return check_seed(value, f"row {index + 1} of {table}: seed")


def check_rows(rows: list[Row], model: LatentDiffusionModel, extrapolate: bool) -> None:
    """Check every row (id, seed, covariates) before the first brain is computed.

    Raises
    ------
    InvalidParameterError
        Naming the first bad row (1-based, header not counted), its id and what is wrong.
    """
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        if not SAFE_ID.fullmatch(row.identifier) or row.identifier.lower().endswith((".nii", ".nii.gz", ".json")):
            raise InvalidParameterError(
                f"row {number}: id must be a plain file name of letters, digits, '.', '_' and '-' (at most 128, "
                f"starting with a letter or digit, without a .nii or .json ending) (got {row.identifier!r})"
            )
        if row.identifier in seen:
            raise InvalidParameterError(
                f"rows {seen[row.identifier]} and {number} repeat the id {row.identifier!r}; every row needs its own id"
            )
        seen[row.identifier] = number
        check_seed(row.seed, f"row {number} ({row.identifier}): seed")
        try:
            resolve_covariates(model.config.covariates, row.covariates, extrapolate=extrapolate)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"row {number} ({row.identifier}): {exc}") from None


def _record_lines(rows: list[Row], model: LatentDiffusionModel) -> list[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(["id", "seed", *model.config.covariate_names])
    for row in rows:
        writer.writerow([row.identifier, row.seed, *(row.covariates.get(n, "") for n in model.config.covariate_names)])
    return buffer.getvalue().splitlines()


def check_record(rows: list[Row], model: LatentDiffusionModel, path: Path) -> bool:
    """Whether the dataset's record at ``path`` must be (re)written for ``rows``.

    A new folder gets a record; an existing record must describe the same rows or a beginning of them
    (the dataset is then extended).

    Raises
    ------
    InvalidParameterError
        If the folder was generated from another request, naming the first row that differs.
    """
    if not path.is_file():
        return True
    old, new = path.read_text().splitlines(), _record_lines(rows, model)
    if old == new:
        return False
    for number, (was, now) in enumerate(zip(old, new, strict=False)):
        if was != now:
            what = "the columns" if number == 0 else f"row {number}"
            raise InvalidParameterError(
                f"{path.parent} holds a dataset made from another request ({what} was {was!r}, now {now!r}); "
                "give another output folder, or the request it was made from"
            )
    return len(new) > len(old)  # a longer request extends the record; a shorter one is a part of it


def draw_rows(model: LatentDiffusionModel, n: int, seed: int) -> list[Row]:
    """n rows with covariates drawn uniformly over their training ranges (categories equally likely)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(n):
        covariates = {
            s.name: (
                s.choices[int(rng.integers(len(s.choices)))]
                if s.categorical
                else round(float(rng.uniform(min(s.low, s.high), max(s.low, s.high))), 3)
            )
            for s in model.config.covariates
        }
        rows.append(Row(f"brain_{index:06d}", covariates, seed + index))
    return rows


def write_rows_table(rows: list[Row], path: Path, model: LatentDiffusionModel) -> None:
    """Write the rows as a covariates table (the record of what was asked for)."""
    atomic_write_bytes(path, ("\n".join(_record_lines(rows, model)) + "\n").encode())


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
    writers: int = 2,
    dtype: str = "float32",
    card: bool = True,
    callback: WorkCallback | None = None,
    **sampling: Any,
) -> dict[str, Any]:
    """Generate a dataset into ``output``; returns counts of rows ``written``, ``skipped`` and ``total``,
    and ``sampler_waited_s``, the seconds the sampler spent waiting on writing.

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
    writers : int
        Threads that write (compress) brains while the next batch samples (0: write in the sampling
        loop). At most ``2 * batch_size`` brains wait to be written at once.
    dtype : {"float32", "int16", "uint8"}
        Stored data type (see :func:`~brainsynth.files.nifti.to_dtype`): ``int16`` keeps intensities to
        1/32767 at about half the size, ``uint8`` to 1/255 as the published model's released dataset
        did (NIfTI-1 has no float16).
    card : bool
        Write (or bring up to date) the dataset card ``DATASET_CARD.md`` and ``covariates.png``.
    callback : callable, optional
        Called with a :class:`~brainsynth.progress.WorkProgress` (``unit="brain"``) after each
        denoising step (``step`` set) and after each written batch; raise
        :class:`~brainsynth.errors.SamplingCancelled` in it to stop. Brains already written stay, the
        batch being sampled is not written, and running the same request again resumes.
    **sampling
        ``steps``, ``scheduler``, ``eta``, ``device``.
    """
    if covariates is None and (n is None or n < 1):
        raise InvalidParameterError("give n (a positive number of brains) or a covariates table")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidParameterError(f"n must be a positive integer (got {n!r})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer (got {batch_size!r})")
    check_writers(writers)
    check_dtype(dtype)
    output = check_output_name(output, "output")
    if output.exists() and not output.is_dir():
        raise InvalidParameterError(f"output {str(output)!r} is a file; give a folder for the dataset")
    shard = check_shard(shard)
    check_seed(seed, "seed")
    rows = read_rows(covariates, model, seed) if covariates is not None else draw_rows(model, n or 0, seed)
    rows = rows[:n] if n is not None else rows
    check_rows(rows, model, extrapolate)
    record_needed = check_record(rows, model, output / RECORD)
    if not os.access(output if output.is_dir() else output.parent, os.W_OK):
        raise InvalidParameterError(f"output folder {str(output)!r} is not writable")
    output.mkdir(exist_ok=True)
    if shard[0] == 1 and record_needed:
        write_rows_table(rows, output / RECORD, model)
    mine = rows[shard[0] - 1 :: shard[1]]
    todo = [r for r in mine if not _done(output / f"{r.identifier}.nii.gz")]
    with BackgroundWriter(workers=writers, queue_size=2 * batch_size) as writer:
        _sample_and_write(model, output, todo, batch_size, extrapolate, callback, writer, dtype, sampling)
    if card and (output / RECORD).is_file():
        write_card(output, model)
    return {
        "written": len(todo),
        "skipped": len(mine) - len(todo),
        "total": len(rows),
        "sampler_waited_s": round(writer.waited_s, 3),
    }


def _sample_and_write(model, output, todo, batch_size, extrapolate, callback, writer, dtype, sampling) -> None:
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        message = f"sampling {batch[0].identifier}" + (f" to {batch[-1].identifier}" if len(batch) > 1 else "")
        result = model.sample_batch(
            [r.covariates for r in batch],
            [r.seed for r in batch],
            batch_size=batch_size,
            extrapolate=extrapolate,
            callback=item_steps(callback, start, len(todo), "brain", message),
            **sampling,
        )
        for index, row in enumerate(batch):
            path = output / f"{row.identifier}.nii.gz"
            writer.submit(functools.partial(result[index].save, path, dtype=dtype, overwrite=True))
        report(callback, start + len(batch), len(todo), "brain", f"sampled {batch[-1].identifier}")


def _done(path: Path) -> bool:
    return path.is_file() and sidecar_path(path).is_file()
