"""What a training run reports: a progress bar, a JSON-lines log and TensorBoard scalars and images.

Only the main process writes. ``log.jsonl`` has one JSON object per line: ``{"step": ..., "loss": ...}``
for metrics and ``{"event": ...}`` for events (start, resume, checkpoint, interrupted, finished).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm


class RunLogger:
    """Progress bar, JSON-lines log and (when installed) TensorBoard for one run.

    Parameters
    ----------
    folder : Path
        Run folder; the log goes to ``log.jsonl`` and TensorBoard files to ``tensorboard/``.
    total_steps : int
        Steps of the whole run, for the progress bar's ETA.
    start_step : int
        Steps already done (when resuming).
    enabled : bool
        False on every process but the main one.
    quiet : bool
        No progress bar.
    """

    def __init__(
        self, folder: Path, total_steps: int, start_step: int = 0, *, enabled: bool = True, quiet: bool = False
    ) -> None:
        self.enabled = enabled
        self._log = open(folder / "log.jsonl", "a") if enabled else None  # noqa: SIM115 - closed in close()
        self._bar = None
        if enabled and not quiet:
            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", file=sys.stderr, dynamic_ncols=True)
        self._writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(folder / "tensorboard"))
            except ImportError:
                self.event("tensorboard_unavailable", reason="install tensorboard for TensorBoard logs")

    def event(self, event: str, **fields: Any) -> None:
        """Record an event in the JSON-lines log (and print notable ones)."""
        if not self.enabled or self._log is None:
            return
        self._log.write(json.dumps({"event": event, "time": time.time(), **fields}, default=str) + "\n")
        self._log.flush()
        if event in {"perceptual_loss_unavailable", "interrupted", "resume"}:
            message = fields.get("message") or ", ".join(f"{k}={v}" for k, v in fields.items())
            label = event.replace("_", " ")
            tqdm.write(f"{label}: {message}", file=sys.stderr)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Record scalar metrics at ``step``."""
        if not self.enabled or self._log is None:
            return
        self._log.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._log.flush()
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, step)

    def advance(self, step: int, values: dict[str, float]) -> None:
        """Move the progress bar to ``step`` and show the latest losses."""
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.startswith("loss")}, refresh=True)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Record a 2D grey image in [0, 1] in TensorBoard."""
        if self._writer is not None:
            self._writer.add_image(tag, np.clip(image, 0.0, 1.0)[None], step, dataformats="CHW")

    def close(self) -> None:
        """Flush and close everything."""
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
        if self._log is not None:
            self._log.close()


def middle_slices(volume: np.ndarray) -> np.ndarray:
    """Axial, coronal and sagittal centre slices of a (X, Y, Z) volume side by side, for a quick look."""
    x, y, z = (s // 2 for s in volume.shape)
    views = [np.rot90(volume[:, :, z]), np.rot90(volume[:, y, :]), np.rot90(volume[x, :, :])]
    height = max(v.shape[0] for v in views)
    padded = [np.pad(v, ((0, height - v.shape[0]), (0, 0))) for v in views]
    return np.concatenate(padded, axis=1)
