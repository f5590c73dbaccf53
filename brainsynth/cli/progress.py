"""A tqdm progress bar driven by the sampler's step callback, with the decode shown as its own stage."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

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
