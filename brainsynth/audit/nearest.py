"""The nearest training images of an image, under each criterion (see :mod:`brainsynth.audit.features`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brainsynth.audit.features import PixelSpace
from brainsynth.errors import InvalidParameterError


@dataclass(frozen=True)
class Nearest:
    """The training image most similar to an image under one criterion.

    Attributes
    ----------
    index : int
        Its position in the training set.
    similarity : float
        The criterion's similarity (a correlation, -1 to 1).
    """

    index: int
    similarity: float


class TrainingIndex:
    """The training images' vectors, searched for each audited image.

    Parameters
    ----------
    space : PixelSpace
        The pixel criterion's mask and passes.
    coarse, full : numpy.ndarray
        The training images' first-pass vectors, one per shift (T, 27, D), and full-resolution
        vectors (T, M).
    latent : numpy.ndarray or None
        Their latent vectors (T, L), or None when the latent criterion is not used.
    candidates : int
        Training images the first pass keeps for the full-resolution pass.
    """

    def __init__(
        self, space: PixelSpace, coarse: np.ndarray, full: np.ndarray, latent: np.ndarray | None, candidates: int
    ) -> None:
        self.space = space
        self.coarse = coarse
        self.full = full
        self.latent = latent
        self.candidates = candidates

    def __len__(self) -> int:
        return len(self.coarse)

    def nearest(
        self, volume: np.ndarray, latent: np.ndarray | None = None, *, exclude: int | None = None
    ) -> dict[str, Nearest]:
        """The nearest training image of ``volume`` under each criterion (``exclude`` leaves one out)."""
        first = (self.coarse @ self.space.coarse(volume)).max(axis=1)
        if exclude is not None:
            first[exclude] = -np.inf
        count = min(self.candidates, len(self) - (exclude is not None))
        kept = np.argpartition(-first, count - 1)[:count]
        second = (self.space.shifted(volume) @ self.full[kept].T).max(axis=0)
        best = int(np.argmax(second))
        found = {"pixel": Nearest(int(kept[best]), float(second[best]))}
        if self.latent is not None and latent is not None:
            similarities = self.latent @ latent
            if exclude is not None:
                similarities[exclude] = -np.inf
            index = int(np.argmax(similarities))
            found["latent"] = Nearest(index, float(similarities[index]))
        return found


def calibration_size(false_positive_rate: float) -> int:
    """The fewest calibration images that can set a threshold at ``false_positive_rate``."""
    return math.ceil(1.0 / false_positive_rate - 1.0 - 1e-9)


def threshold(similarities: Sequence[float], false_positive_rate: float) -> float:
    """The similarity above which a real image unseen in training lies with probability at most
    ``false_positive_rate``: the ceil((n + 1)(1 - rate))-th smallest of the n calibration images'
    similarities (the conformal quantile; it holds for any distribution, given that the calibration
    images and the new ones are alike).

    Raises
    ------
    InvalidParameterError
        If there are too few calibration images for the rate (see :func:`calibration_size`).
    """
    values = np.sort(np.asarray(similarities, dtype=np.float64))
    rank = math.ceil((len(values) + 1) * (1.0 - false_positive_rate) - 1e-9)
    if rank > len(values):
        raise InvalidParameterError(
            f"a threshold at a false-positive rate of {100 * false_positive_rate:g} % per criterion needs at least "
            f"{calibration_size(false_positive_rate)} real images unseen in training to calibrate on (got "
            f"{len(values)}): give more (--held-out, or more training images), or raise --false-positive-rate"
        )
    return float(values[rank - 1])
