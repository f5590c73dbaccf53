"""Writing files while the next batch samples: a bounded queue drained by background threads.

Compressing one 160 x 224 x 160 float32 volume takes over a second on one core, as long as sampling a
demo brain; done in the sampling loop it halves the rate. :class:`BackgroundWriter` takes each write
as a function, runs it on one of ``workers`` threads (zlib, which NIfTI's gzip uses, releases the GIL,
so the threads compress in parallel with the sampler and with each other) and holds at most
``queue_size`` writes waiting, so memory stays bounded: a sampler that outruns the disk waits, and the
time it waits is counted (:attr:`waited_s`). Each write is expected to be atomic itself (brainsynth's
are), so a brain is never half-written; the first error of a write is raised again by :meth:`close`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from brainsynth.errors import InvalidParameterError

_DONE = object()


def check_writers(workers: object) -> int:
    """``workers`` as a count of writing threads, or an error naming what is allowed."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InvalidParameterError(f"writers must be a whole number, 0 or more (got {workers!r})")
    return workers


class BackgroundWriter:
    """Runs write functions on background threads with a bounded queue.

    Parameters
    ----------
    workers : int
        Threads that write (0 writes in the caller's thread, as a serial loop does).
    queue_size : int
        Writes that may wait at once (each holds its volume in memory).

    Examples
    --------
    >>> with BackgroundWriter(workers=2) as writer:  # doctest: +SKIP
    ...     for item, path in items:
    ...         writer.submit(lambda item=item, path=path: item.save(path))
    """

    def __init__(self, workers: int = 2, queue_size: int = 4) -> None:
        check_writers(workers)
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise InvalidParameterError(f"queue_size must be a positive whole number (got {queue_size!r})")
        self.workers = workers
        self.waited_s = 0.0  # time the caller spent blocked: on a full queue, or writing itself (0 workers)
        self.written = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"brainsynth-writer-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(raise_errors=error is None)

    def submit(self, write: Callable[[], Any]) -> None:
        """Queue ``write()`` (blocks while the queue is full); raises a failed earlier write's error."""
        self._raise_first()
        started = time.perf_counter()
        if self.workers == 0:
            write()
            self.written += 1
        else:
            self._queue.put(write)
        self.waited_s += time.perf_counter() - started

    def close(self, *, raise_errors: bool = True) -> None:
        """Finish every queued write and stop the threads; raise the first write's error, if any."""
        for _ in self._threads:
            self._queue.put(_DONE)
        for thread in self._threads:
            thread.join()
        self._threads = []
        if raise_errors:
            self._raise_first()

    def _work(self) -> None:
        while True:
            write = self._queue.get()
            if write is _DONE:
                return
            if self._errors:
                continue  # after a failure, the rest is dropped: close() reports it
            try:
                write()
            except BaseException as error:  # handed to the caller at its next submit or at close
                with self._lock:
                    self._errors.append(error)
            else:
                with self._lock:
                    self.written += 1

    def _raise_first(self) -> None:
        with self._lock:
            if self._errors:
                raise self._errors[0]
