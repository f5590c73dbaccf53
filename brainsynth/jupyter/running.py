"""One run at a time of a Jupyter face's work: in a background thread, or in the caller's; Cancel at the next step."""

from __future__ import annotations

import threading
from collections.abc import Callable

from brainsynth.progress import Cancellation


class BackgroundRun:
    """Runs a face's work (sampling, editing) once at a time; ``cancellation`` watches its step callback.

    Parameters
    ----------
    name : str
        The name of the thread that runs it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.cancellation = Cancellation()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether a background run is still going."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable[[], None], *, wait: bool) -> None:
        """Run ``work()`` afresh (not cancelled): here and now with ``wait``, else in a thread."""
        self.cancellation.reset()
        if wait:
            work()
            return
        self._thread = threading.Thread(target=work, name=self.name, daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background run to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def cancel(self) -> None:
        """Stop the run at its next step."""
        self.cancellation.cancel()
