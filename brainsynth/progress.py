"""One progress and cancellation contract for all long work: sampling, datasets, cohorts, evaluations.

Every long call takes ``callback=``, a plain function called with a progress value: a
:class:`~brainsynth.sampling.loop.StepProgress` after each denoising step of a sampling call, and a
:class:`WorkProgress` for work made of several items (the brains of a dataset, the subjects of a
cohort, the stages of an evaluation), which carries the current sampling step too. To cancel, the
callback raises :class:`~brainsynth.errors.SamplingCancelled`; the work stops at once, what is half
made is not written, and what was finished stays (a dataset resumes from it).

:class:`Cancellation` is the one cancel switch of the faces: a button sets it from the UI thread and
the callback that :meth:`Cancellation.watch` wraps raises at the next step. For generator workers
(napari), :func:`brainsynth.sampling.stepping.iterate_steps` turns any such call into a generator that
cancels when it is closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from brainsynth.errors import SamplingCancelled
from brainsynth.sampling.loop import StepProgress

Progress = TypeVar("Progress")


@dataclass(frozen=True)
class WorkProgress:
    """Progress of work made of several items.

    Attributes
    ----------
    done : int
        Items finished so far, 0 to ``total``.
    total : int
        Items of this call.
    unit : str
        What an item is: ``"brain"``, ``"subject"`` or ``"stage"``.
    message : str
        What is being done now, for a status line.
    step : StepProgress or None
        The denoising step of the item being sampled, when sampling.
    """

    done: int
    total: int
    unit: str
    message: str = ""
    step: StepProgress | None = None


#: A callback of long work: called with each progress value; raises SamplingCancelled to cancel.
WorkCallback = Callable[[Any], None]


def item_steps(
    callback: WorkCallback | None, done: int, total: int, unit: str, message: str = ""
) -> Callable[[StepProgress], None] | None:
    """The sampling callback of one item of long work: each step reported as a :class:`WorkProgress`."""
    if callback is None:
        return None
    return lambda step: callback(WorkProgress(done, total, unit, message, step))


def report(callback: WorkCallback | None, done: int, total: int, unit: str, message: str = "") -> None:
    """Report ``done`` of ``total`` items to ``callback`` (if any); it may raise to cancel."""
    if callback is not None:
        callback(WorkProgress(done, total, unit, message))


class Cancellation:
    """A cancel switch shared by a UI thread and a worker.

    Examples
    --------
    >>> switch = Cancellation()
    >>> callback = switch.watch(lambda progress: None)
    >>> switch.cancel()
    >>> callback("step")
    Traceback (most recent call last):
    ...
    brainsynth.errors.SamplingCancelled: cancelled
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called since the last :meth:`reset`."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Ask the watched work to stop at its next step (from any thread)."""
        self._event.set()

    def reset(self) -> None:
        """Arm the switch for new work."""
        self._event.clear()

    def check(self) -> None:
        """Raise :class:`~brainsynth.errors.SamplingCancelled` if cancelled."""
        if self._event.is_set():
            raise SamplingCancelled("cancelled")

    def watch(self, callback: Callable[[Progress], None] | None = None) -> Callable[[Progress], None]:
        """A callback that first checks the switch, then passes the progress on to ``callback``."""

        def watched(progress: Progress) -> None:
            self.check()
            if callback is not None:
                callback(progress)

        return watched
