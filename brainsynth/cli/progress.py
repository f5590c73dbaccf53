"""A tqdm progress bar driven by the sampler's step callback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

from brainsynth.sampling import ProgressCallback, StepProgress


@contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[ProgressCallback | None]:
    """Yield a step callback that draws a progress bar on stderr (or ``None`` when quiet).

    The bar appears at the first step, so errors found before sampling starts stay on one line.
    """
    if quiet:
        yield None
        return
    bars: list[tqdm] = []

    def update(progress: StepProgress) -> None:
        if not bars:
            bars.append(tqdm(desc=description, total=progress.total, unit="step", file=sys.stderr,
                             dynamic_ncols=True))
        bar = bars[0]
        if bar.total != progress.total:
            bar.reset(total=progress.total)
        bar.n = progress.step
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
