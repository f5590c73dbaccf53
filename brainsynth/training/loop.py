"""The training loop shared by autoencoder and diffusion training: steps, checkpoints, signals, logs.

Randomness of step ``k`` comes from generators seeded with ``(seed, k)`` (shared by all processes,
for choosing the batch) and ``(seed, k, rank)`` (per process, for noise and crops), so a run resumed
from a checkpoint draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from brainsynth.errors import BrainsynthError, InvalidParameterError, OutputExistsError
from brainsynth.files.atomic import atomic_write_json
from brainsynth.files.paths import check_output_name
from brainsynth.files.replace import check_not_an_input, check_replaceable
from brainsynth.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, restore, rng_state, save_checkpoint
from brainsynth.training.distributed import Distributed, any_rank, barrier, gather_strings, weights_checksum
from brainsynth.training.logs import RunLogger


class TrainingInterrupted(BrainsynthError):  # noqa: N818 - an event, like KeyboardInterrupt
    """Training stopped on SIGINT or SIGTERM after saving a checkpoint."""

    def __init__(self, step: int, folder: Path) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved in {folder}; continue with --resume")
        self.step = step


class TrainingDiverged(BrainsynthError):  # noqa: N818 - an event, like TrainingInterrupted
    """The loss stopped being a finite number; the run stops with its last good checkpoint kept."""


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning rate of optimiser step ``step`` (0-based) as a fraction of the configured one.

    A linear warm-up over ``warmup`` steps, then constant, or (``"cosine"``) falling along a half
    cosine to 0 at step ``total``.
    """
    factor = min(1.0, (step + 1) / max(1, warmup))
    if schedule == "cosine" and step >= warmup:
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def step_generator(seed: int, step: int, rank: int | None = None) -> torch.Generator:
    """A CPU generator for step ``step``: shared by all processes when ``rank`` is None."""
    value = (seed * 1_000_003 + step * 7_919 + (0 if rank is None else 1 + rank) * 104_729) % (2**62)
    return torch.Generator(device="cpu").manual_seed(value)


class TrainingTask:
    """What differs between autoencoder and diffusion training; the loop does the rest."""

    task: str = ""
    #: Events to record once the run's log is open, e.g. ``{"event": "perceptual_loss_unavailable", ...}``.
    notes: list[dict[str, Any]] = []  # noqa: RUF012 - read only here; instances assign their own list

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def train_step(self, step: int) -> dict[str, float]:
        """Do training step ``step`` (0-based) and return its losses."""
        raise NotImplementedError

    def log_images(self, step: int, logger: RunLogger) -> None:
        """Write a qualitative picture of the current state."""

    def checked_module(self) -> torch.nn.Module:
        """The network whose weights must agree across processes at the end."""
        raise NotImplementedError

    def finish(self, logger: RunLogger) -> Path:
        """Write the run's result and return its path."""
        raise NotImplementedError


def check_output(
    output: str | Path, *, resume: bool, overwrite: bool, inputs: Mapping[str, str | Path | None] | None = None
) -> Path:
    """Check a run folder before any work: an existing run is only continued (resume) or replaced (overwrite).

    ``overwrite`` replaces only a training run (a folder with ``run.json``), and never a folder that
    is or holds one of ``inputs`` (the data, the autoencoder, ...).

    Raises
    ------
    InvalidParameterError
        If the parent folder is missing, ``resume`` finds nothing to resume, the folder is an input,
        or ``overwrite`` would replace something that is not a training run.
    OutputExistsError
        If the folder holds files and neither ``resume`` nor ``overwrite`` is given.
    """
    output = Path(output).expanduser()
    if resume and overwrite:
        raise InvalidParameterError("give either --resume or --overwrite, not both")
    output = check_output_name(output, "--output")
    check_not_an_input(output, inputs or {})
    if output.exists() and not output.is_dir():
        raise InvalidParameterError(f"--output {str(output)!r} is a file; give a folder for the run")
    if resume and not (output / "checkpoints").is_dir():
        raise InvalidParameterError(f"cannot resume: {output} holds no checkpoints")
    if output.exists() and any(output.iterdir()) and not resume and not overwrite:
        raise OutputExistsError(
            f"{output} already holds files (another run?); pass --resume to continue it or --overwrite to start afresh"
        )
    if overwrite:
        check_replaceable(output, "training run", overwrite=True)
    return output


def prepare_output(
    output: Path, *, section: dict[str, Any], config_hash: str, task: str, overwrite: bool, context: Distributed
) -> Path | None:
    """Create the run folder checked by :func:`check_output`.

    With ``overwrite`` the old run is moved aside to a hidden folder beside it (returned), to be
    deleted when the new run finishes or put back if it fails (:func:`replacing_run`).
    """
    barrier(context)
    aside = None
    if context.is_main:
        if overwrite and output.exists() and any(output.iterdir()):
            aside = Path(tempfile.mkdtemp(prefix=f".{output.name}.replaced-", dir=output.parent))
            output.rename(aside / output.name)
        output.mkdir(exist_ok=True)
        atomic_write_json(output / "run.json", {"task": task, "config_hash": config_hash, **section})
    barrier(context)
    return aside


@contextlib.contextmanager
def replacing_run(output: Path, aside: Path | None, context: Distributed) -> Iterator[None]:
    """Delete the old run moved ``aside`` once the new one finished; put it back if the new one fails.

    An interrupted new run (SIGINT, SIGTERM) has saved a checkpoint to resume from, so it counts as
    the run that replaced the old one.
    """
    try:
        yield
    except TrainingInterrupted:
        if context.is_main and aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        raise
    except BaseException:
        if context.is_main and aside is not None:
            shutil.rmtree(output, ignore_errors=True)
            (aside / output.name).rename(output)
            shutil.rmtree(aside, ignore_errors=True)
        raise
    if context.is_main and aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


class _StopSignal:
    """Records SIGINT/SIGTERM instead of dying mid-step; restores the old handlers on exit."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: signals cannot be caught here
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _checkpoint(task: TrainingTask, folder: Path, step: int, config_hash: str, context: Distributed) -> None:
    if context.is_main:
        save_checkpoint(
            folder,
            {"task": task.task, "step": step, "config_hash": config_hash, "rng": rng_state(), **task.state_dict()},
        )
    barrier(context)


def _stop_if_diverged(
    values: dict[str, float], step: int, folder: Path, logger: RunLogger, context: Distributed
) -> None:
    """Stop at the first loss that is not a finite number, before it reaches a checkpoint."""
    bad = sorted(name for name, value in values.items() if not math.isfinite(float(value)))
    if not any_rank(bool(bad), context):
        return
    logger.event("diverged", step=step, losses={k: float(v) for k, v in values.items()})
    what = ", ".join(f"{k} is {float(values[k])}" for k in bad) or "another process's loss is not finite"
    checkpoint = folder / CHECKPOINT_NAME
    kept = (
        f"its last checkpoint, {checkpoint}, is from before and is kept"
        if checkpoint.is_file()
        else "no checkpoint had been written yet"
    )
    raise TrainingDiverged(
        f"training stopped at step {step}: {what}; {kept}. Lower the learning rate, or check the "
        "data for extreme values"
    )


def run_training(
    task: TrainingTask,
    *,
    output: Path,
    total_steps: int,
    checkpoint_every: int,
    log_every: int,
    image_every: int,
    config_hash: str,
    context: Distributed,
    resume: bool = False,
    quiet: bool = False,
) -> Path:
    """Run ``task`` to ``total_steps`` with checkpoints every ``checkpoint_every`` steps.

    Returns
    -------
    Path
        What :meth:`TrainingTask.finish` wrote.

    Raises
    ------
    TrainingInterrupted
        On SIGINT or SIGTERM, after saving a checkpoint at the last completed step.
    """
    folder = output / "checkpoints"
    start = 0
    if resume:
        state = load_checkpoint(folder, task=task.task, config_hash=config_hash)
        start = restore(task, state, folder)
    logger = RunLogger(output, total_steps, start, enabled=context.is_main, quiet=quiet)
    logger.event(
        "resume" if resume else "start",
        step=start,
        task=task.task,
        processes=context.world_size,
        device=str(context.device),
        message=f"continuing from step {start}" if resume else "",
    )
    for note in task.notes:
        logger.event(**note)
    try:
        with _StopSignal() as stop:
            step = start
            while step < total_steps:
                if any_rank(stop.received is not None, context):
                    _checkpoint(task, folder, step, config_hash, context)
                    logger.event(
                        "interrupted", step=step, signal=stop.received, message=f"checkpoint saved at step {step}"
                    )
                    raise TrainingInterrupted(step, folder)
                values = task.train_step(step)
                _stop_if_diverged(values, step + 1, folder, logger, context)
                step += 1
                if step % log_every == 0 or step == total_steps:
                    logger.metrics(step, values)
                logger.advance(step, values)
                if context.is_main and step % image_every == 0:
                    task.log_images(step, logger)
                if step % checkpoint_every == 0 or step == total_steps:
                    _checkpoint(task, folder, step, config_hash, context)
                    logger.event("checkpoint", step=step)
        checksums = gather_strings(weights_checksum(task.checked_module()), context)
        logger.event(
            "weights_agree", processes=context.world_size, identical=len(set(checksums)) == 1, checksums=checksums
        )
        result = task.finish(logger) if context.is_main else output
        barrier(context)
        logger.event("finished", step=total_steps, result=str(result))
        return result
    finally:
        logger.close()


def read_log(output: str | Path) -> list[dict[str, Any]]:
    """Read a run's ``log.jsonl``."""
    path = Path(output) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
