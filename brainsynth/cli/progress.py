"""tqdm progress bars driven by the progress callbacks: a sampling call's steps (with the decode shown as its
own stage), and the items of long work (brains of a dataset, subjects of a cohort, stages of an evaluation)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

from brainsynth.progress import WorkCallback, WorkProgress
from brainsynth.sampling.loop import ProgressCallback, StepProgress

#: Seconds between redraws of the decoding stage's clock.
DECODE_REFRESH_S = 0.5


class _DecodeStage:
    """A one-line 'decoding' stage whose clock runs until it is closed."""

    def __init__(self) -> None:
        self.bar = tqdm(
            desc="decoding", total=None, file=sys.stderr, bar_format="{desc}: {elapsed}", dynamic_ncols=True
        )
        self._stop = threading.Event()
        self._clock = threading.Thread(target=self._tick, name="brainsynth-decode-clock", daemon=True)
        self._clock.start()

    def _tick(self) -> None:
        while not self._stop.wait(DECODE_REFRESH_S):
            self.bar.refresh()

    def close(self) -> None:
        self._stop.set()
        self._clock.join()
        self.bar.close()


@contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[ProgressCallback | None]:
    """Yield a step callback that draws a progress bar on stderr (or ``None`` when quiet).

    The bar appears at the first step, so errors found before sampling starts stay on one line. After
    the last step the step bar closes (its rate counts the denoising steps only) and a 'decoding'
    stage shows the time the decoder takes.
    """
    if quiet:
        yield None
        return
    bars: list[tqdm] = []
    stages: list[_DecodeStage] = []

    def update(progress: StepProgress) -> None:
        if not bars:
            bars.append(tqdm(desc=description, total=progress.total, unit="step", file=sys.stderr, dynamic_ncols=True))
        bar = bars[0]
        if bar.total != progress.total:
            bar.reset(total=progress.total)
        bar.n = progress.step
        bar.refresh()
        if progress.step == progress.total and not stages:
            bar.close()
            stages.append(_DecodeStage())

    try:
        yield update
    finally:
        for stage in stages:
            stage.close()
        for bar in bars:
            bar.close()


@contextmanager
def work_bar(description: str, quiet: bool = False) -> Iterator[WorkCallback | None]:
    """Yield a callback of long work (:class:`~brainsynth.progress.WorkProgress`) that draws one bar of
    its items on stderr, with the current denoising step or message beside it (``None`` when quiet)."""
    if quiet:
        yield None
        return
    bars: list[tqdm] = []

    def update(progress: WorkProgress) -> None:
        if bars and bars[0].unit != progress.unit:  # a new kind of item (brains drawn, then images searched)
            bars.pop().close()
        if not bars:
            bars.append(
                tqdm(desc=description, total=progress.total, unit=progress.unit, file=sys.stderr, dynamic_ncols=True)
            )
        bar = bars[0]
        if bar.total != progress.total:
            bar.reset(total=progress.total)
        bar.n = progress.done
        step = progress.step
        bar.set_postfix_str(f"step {step.step}/{step.total}" if step is not None else progress.message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
