"""Turning a callback-driven call into a generator that yields once per progress report.

GUI faces run long work in generator workers (napari's ``thread_worker``) that yield progress and stop
when the generator is closed. :func:`iterate_steps` runs any call of the progress contract
(:mod:`brainsynth.progress`: ``model.sample``, ``model.traverse``, ``generate_dataset``, ...) in a
helper thread, yields each progress value it reports, and returns the call's result. Closing the
generator cancels the call at its next step; nothing is returned then.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from brainsynth.progress import Cancellation
from brainsynth.sampling.loop import StepProgress

Result = TypeVar("Result")


def iterate_steps(function: Callable[..., Result], *args: Any, **kwargs: Any) -> Generator[StepProgress, None, Result]:
    """Run ``function(*args, callback=..., **kwargs)`` and yield its progress, step by step.

    Parameters
    ----------
    function : callable
        A sampling call that takes a ``callback`` keyword (``model.sample``, ``model.traverse``, ...).
    *args, **kwargs
        Its arguments (without ``callback``).

    Returns
    -------
    The call's result, as the generator's return value (``result = yield from iterate_steps(...)``).

    Raises
    ------
    Exception
        Whatever the call raised (validation errors before the first step included).

    Examples
    --------
    >>> steps = iterate_steps(model.sample, age=70, seed=1)  # doctest: +SKIP
    >>> for progress in steps:  # doctest: +SKIP
    ...     print(progress.step, progress.total)
    """
    if "callback" in kwargs:
        raise TypeError("iterate_steps passes its own callback; do not give one")
    messages: queue.Queue[tuple[str, Any]] = queue.Queue()
    switch = Cancellation()
    outcome: dict[str, Any] = {}
    callback = switch.watch(lambda progress: messages.put(("step", progress)))

    def target() -> None:
        try:
            outcome["result"] = function(*args, callback=callback, **kwargs)
        except BaseException as error:  # handed to the consumer below
            outcome["error"] = error
        finally:
            messages.put(("done", None))

    worker = threading.Thread(target=target, name="brainsynth-sampling", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = messages.get()
            if kind == "done":
                break
            yield item
    finally:
        switch.cancel()  # a consumer that stops early cancels the call at its next step
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
