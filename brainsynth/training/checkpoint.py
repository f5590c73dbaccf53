"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds the step count, every network, optimiser and learning-rate schedule, the EMA
weights, the random states and the SHA-256 of the configuration it was trained with, so a resumed
run continues exactly where the checkpoint was taken.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsynth.errors import BrainsynthError
from brainsynth.files.atomic import atomic_write_bytes
from brainsynth.files.schema import shown

CHECKPOINT_NAME = "last.pt"
FORMAT = "brainsynth.checkpoint"


#: The fields each task restores from a checkpoint, besides its step and random states.
TASK_FIELDS = {
    "autoencoder": ("autoencoder", "discriminator", "optimizer", "optimizer_d"),
    "diffusion": ("unet", "ema", "optimizer", "lr_schedule"),
}


class CheckpointError(BrainsynthError, ValueError):
    """A checkpoint cannot be used to resume this run."""


def rng_state() -> dict[str, Any]:
    """The global random states of Python, NumPy and PyTorch, in a form ``weights_only`` loads."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    torch.set_rng_state(state["torch"])


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``folder/last.pt`` through a temporary file and a rename."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / CHECKPOINT_NAME
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def check_resumable(
    folder: str | Path,
    *,
    task: str,
    config_hash: str,
    autoencoder: str | None = None,
    run_record: str | Path | None = None,
    networks: Mapping[str, torch.nn.Module] | None = None,
) -> None:
    """Check, before anything is written, that the run in ``folder`` may be continued as asked.

    The checkpoint must be of ``task`` and the same configuration, and a diffusion run must continue
    on the autoencoder it started with (``autoencoder``: that autoencoder's weights' SHA-256, compared
    with the one ``run_record`` recorded).

    ``networks`` maps checkpoint fields to networks built from the configuration; each field must hold
    their weights (the same names and shapes), and every field the task restores must be there.

    Raises
    ------
    CheckpointError
        Naming what differs.
    """
    state = load_checkpoint(folder, task=task, config_hash=config_hash, peek=True)
    path = Path(folder) / CHECKPOINT_NAME
    missing = [name for name in TASK_FIELDS.get(task, ()) if not isinstance(state.get(name), dict)]
    if missing:
        raise CheckpointError(f"cannot resume: {path} is damaged: it lacks {', '.join(map(repr, missing))}")
    for name, network in (networks or {}).items():
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
        saved = state[name]
        found = {k: tuple(v.shape) for k, v in saved.items() if isinstance(v, torch.Tensor)}
        if found != expected:
            differing = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
            raise CheckpointError(
                f"cannot resume: {path} holds {name} weights of another network ({len(differing)} tensors differ, "
                f"e.g. {differing[0][:60]}); start afresh with --overwrite"
            )
    if autoencoder is None or run_record is None or not Path(run_record).is_file():
        return
    try:
        recorded = json.loads(Path(run_record).read_text()).get("autoencoder_weights")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is not None and recorded != autoencoder:
        raise CheckpointError(
            f"cannot resume: the run was trained on the latents of another autoencoder (its weights' sha256 "
            f"{str(recorded)[:12]}..., this --autoencoder's {autoencoder[:12]}...); give the autoencoder it started "
            "with, or start afresh with --overwrite"
        )


def load_checkpoint(folder: str | Path, *, task: str, config_hash: str, peek: bool = False) -> dict[str, Any]:
    """Read the last checkpoint of ``task`` and check that it was made with the same configuration.

    ``peek`` maps the file instead of reading it (for checks that do not use the tensors).

    Raises
    ------
    CheckpointError
        If there is no checkpoint, it is unreadable, of another task or of another configuration.
    """
    path = Path(folder) / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=peek)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(
            f"cannot resume: {path} is not a readable checkpoint: damaged, or not written by brainsynth "
            f"({type(exc).__name__})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"cannot resume: {path} is not a brainsynth training checkpoint")
    if state.get("task") != task:
        raise CheckpointError(f"cannot resume: {path} is a checkpoint of {state.get('task')} training, not {task}")
    if state.get("config_hash") != config_hash:
        raise CheckpointError(
            f"cannot resume: {path} was made with another configuration (its settings hash "
            f"{str(state.get('config_hash'))[:12]} differs from {config_hash[:12]}); use the same --config, "
            "or start afresh with --overwrite"
        )
    step, rng = state.get("step"), state.get("rng")
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        raise CheckpointError(f"cannot resume: {path} is damaged: its step must be a whole number (got {shown(step)})")
    if not (isinstance(rng, dict) and all(k in rng for k in ("python", "numpy", "torch"))):
        raise CheckpointError(f"cannot resume: {path} is damaged: it lacks the random states (rng) to continue from")
    return state


def restore(task: Any, state: dict[str, Any], folder: str | Path) -> int:
    """Load a checkpoint's networks, optimisers and random states into ``task``; return its step.

    Raises
    ------
    CheckpointError
        If a field is missing or does not fit (``autoencoder`` of another network, say).
    """
    path = Path(folder) / CHECKPOINT_NAME
    try:
        task.load_state_dict(state)
        set_rng_state(state["rng"])
    except KeyError as exc:
        raise CheckpointError(f"cannot resume: {path} is damaged: it lacks {exc}") from exc
    except (TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        raise CheckpointError(
            f"cannot resume: {path} is damaged or of another network ({type(exc).__name__}: {str(exc)[:160]})"
        ) from exc
    return int(state["step"])
