"""A tqdm progress bar driven by the sampler's step callback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

from brainsynth.sampling import ProgressCallback, StepProgress


@contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator[ProgressCallback | None]:
    """Yield a step callback that advances a progress bar on stderr (or ``None`` when quiet)."""
    if quiet:
        yield None
        return
    bar = tqdm(desc=description, unit="step", file=sys.stderr, dynamic_ncols=True)
    try:

        def update(progress: StepProgress) -> None:
            if bar.total != progress.total:
                bar.reset(total=progress.total)
            bar.n = progress.step
            bar.refresh()

        yield update
    finally:
        bar.close()
