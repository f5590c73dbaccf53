"""Which training timesteps a sampling run evaluates the U-Net at (the timestep spacing).

brainsynth builds the list itself, so the same seed gives the same brain whatever MONAI is installed:
MONAI up to 1.5 and MONAI GenerativeModels space DDIM and DDPM steps ``T // n`` apart ("leading",
the published model's sampler), MONAI 1.6 spaces them evenly from ``T - 1`` to 0 ("linspace"). Each
solver step then goes from the noise level the U-Net was evaluated at to the next listed one (see
:mod:`brainsynth.sampling.solvers.base`), whichever spacing is chosen.
"""

from __future__ import annotations

import numpy as np

from brainsynth.errors import InvalidParameterError

#: The spacing used when the caller gives none: the published model's.
DEFAULT_TIMESTEP_SPACING = "leading"

#: Spacing names and what each gives, for help texts (examples for 50 of 1000 training timesteps).
TIMESTEP_SPACINGS = {
    "leading": "T // n apart down to 0: 980, 960, ..., 0 (the published model's sampler: MONAI GenerativeModels "
    "and MONAI up to 1.5)",
    "linspace": "evenly from T - 1 to 0, rounded: 999, 979, 958, ..., 0 (MONAI 1.6)",
    "trailing": "T / n apart from T - 1: 999, 979, ..., 19 (Lin et al. 2024)",
}


def check_timestep_spacing(spacing: str) -> str:
    """Return ``spacing`` if it is one of :data:`TIMESTEP_SPACINGS`.

    Raises
    ------
    InvalidParameterError
        Naming the allowed spacings and the one received.
    """
    if spacing not in TIMESTEP_SPACINGS:
        raise InvalidParameterError(f"timestep_spacing must be one of {', '.join(TIMESTEP_SPACINGS)} (got {spacing!r})")
    return spacing


def inference_timesteps(
    num_train_timesteps: int, steps: int, spacing: str = DEFAULT_TIMESTEP_SPACING
) -> tuple[int, ...]:
    """The timesteps of an ``steps``-step run, from the noisiest down.

    Parameters
    ----------
    num_train_timesteps : int
        Number of training timesteps ``T``.
    steps : int
        Number of sampling steps ``n``, 1 to ``T``.
    spacing : str
        One of :data:`TIMESTEP_SPACINGS`.

    Returns
    -------
    tuple of int
        ``n`` distinct timesteps in decreasing order.

    Examples
    --------
    >>> inference_timesteps(1000, 4)
    (750, 500, 250, 0)
    >>> inference_timesteps(1000, 4, "linspace")
    (999, 666, 333, 0)
    >>> inference_timesteps(1000, 4, "trailing")
    (999, 749, 499, 249)
    """
    check_timestep_spacing(spacing)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_train_timesteps:
        raise InvalidParameterError(f"steps must be an integer from 1 to {num_train_timesteps} (got {steps!r})")
    total = num_train_timesteps
    if spacing == "leading":
        values = np.arange(steps)[::-1] * (total // steps)
    elif spacing == "linspace":
        values = np.round(np.linspace(total - 1, 0, steps))
    else:
        values = np.round(np.arange(total, 0, -total / steps))[:steps] - 1
    return tuple(int(v) for v in values)
