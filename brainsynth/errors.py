"""Exception types raised by brainsynth.

Every error a user can cause derives from :class:`BrainsynthError`, so the command line can report it
in one line without a traceback. Errors about bad values also derive from :class:`ValueError`.
"""

from __future__ import annotations


class BrainsynthError(Exception):
    """Base class of the errors a user can cause and fix."""


class InvalidParameterError(BrainsynthError, ValueError):
    """A parameter has a value outside what is allowed.

    The message names the parameter, what is allowed and what was received.
    """


class ModelNotFoundError(BrainsynthError, FileNotFoundError):
    """No model is known under the given name or found at the given path."""


class ModelLoadError(BrainsynthError):
    """A model directory or bundle exists but cannot be loaded (bad config, weights or checksum)."""


class ChecksumError(ModelLoadError):
    """A weight file does not have the checksum its model declares."""


class DeviceUnavailableError(BrainsynthError):
    """The requested compute device is not available on this machine."""


class OutputExistsError(BrainsynthError, FileExistsError):
    """An output file exists and overwriting was not requested."""


class SamplingCancelled(BrainsynthError):  # noqa: N818 - reads as an event, like KeyboardInterrupt
    """Sampling was cancelled by a progress callback; nothing was written."""


class NonFiniteResultError(BrainsynthError):
    """A computed result holds NaN or infinite values and is not written."""
