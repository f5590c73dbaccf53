"""What an audit compares: images as unit vectors under each criterion.

Two criteria of the memorisation literature:

Both compare what sets an image apart from the average training image (the training images' mean
is subtracted first): every brain on a common grid resembles every other, so correlating the images
themselves would find any two alike, while the residuals of two people are nearly unrelated and those
of a copy and its original nearly the same.

``pixel``
    Pearson correlation of the voxels inside the training images' head (or brain) mask, maximised over
    integer shifts of up to one voxel along each axis (a copy moved by a voxel is still a copy; at
    1 mm that is 1 mm, at 2 mm 2 mm). Computed in two passes: every pair on a coarse grid (the residual
    smoothed over 3 x 3 x 3 voxels, in blocks of 8 x 8 x 8 voxels at 1 mm, 4 x 4 x 4 at 2 mm: see
    :data:`COARSE_BLOCKS`), which tolerates small shifts and prunes the training images to a few
    candidates; then at full resolution against those candidates only.
``latent``
    Pearson correlation of the autoencoder's latents (the posterior means, the space the diffusion
    model learned and could copy), every pair: a latent is a few tens of thousands of numbers.

Every vector here has zero mean and unit length, so a dot product is the correlation.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

#: The first pass's grid has about this many blocks along its shortest axis (20 x 28 x 20 on the
#: published grid: 8 x 8 x 8 voxels per block at 1 mm, 4 x 4 x 4 at 2 mm, one voxel at 8 mm).
COARSE_BLOCKS = 20
#: The shifts (voxels) tried at full resolution.
SHIFTS = tuple(itertools.product((-1, 0, 1), repeat=3))
#: A voxel belongs to the mask when the training images' mean there is above this share of its 99.5th percentile.
MASK_LEVEL = 0.1

CRITERIA = ("pixel", "latent")


def unit_rows(values: np.ndarray) -> np.ndarray:
    """Each row minus its mean, divided by its length (float32; a constant row stays zero)."""
    rows = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    rows = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def coarse_factor(shape: tuple[int, ...]) -> int:
    """Voxels per block (along each axis) of the first pass on a grid of ``shape``."""
    return max(1, min(shape) // COARSE_BLOCKS)


def _box3(volume: np.ndarray) -> np.ndarray:
    """The mean over each voxel's 3 x 3 x 3 neighbourhood (edges repeated): a shift of one voxel then
    changes little."""
    padded = np.pad(volume, 1, mode="edge")
    for axis in range(3):
        size = padded.shape[axis] - 2
        padded = sum(np.take(padded, range(offset, offset + size), axis=axis) for offset in range(3)) / 3.0
    return padded


def _blocks(volume: np.ndarray, factor: int) -> np.ndarray:
    x, y, z = (s // factor * factor for s in volume.shape)
    cropped = volume[:x, :y, :z]
    return cropped.reshape(x // factor, factor, y // factor, factor, z // factor, factor).mean(axis=(1, 3, 5))


class PixelSpace:
    """The pixel criterion's two passes over a fixed mask.

    Parameters
    ----------
    average : numpy.ndarray
        The training images' mean on the audit's grid: subtracted from every image, and where it is
        foreground, the voxels compared.
    """

    def __init__(self, average: np.ndarray) -> None:
        self.average = np.asarray(average, dtype=np.float32)
        self.mask = self.average > MASK_LEVEL * float(np.percentile(self.average, 99.5))
        self.factor = coarse_factor(self.average.shape)
        self.coarse_mask = _blocks(self.mask.astype(np.float32), self.factor) > 0.5

    def coarse(self, volume: np.ndarray, *, shifted: bool = False) -> np.ndarray:
        """The first pass's vector of ``volume`` (its residual smoothed and in blocks), shape (D,); with
        ``shifted``, one per shift of :data:`SHIFTS` of the volume, shape (27, D)."""
        smoothed = _box3(np.asarray(volume, dtype=np.float32))
        average = _blocks(_box3(self.average), self.factor)[self.coarse_mask]
        moves = SHIFTS if shifted else ((0, 0, 0),)
        rows = [
            _blocks(np.roll(smoothed, move, axis=(0, 1, 2)), self.factor)[self.coarse_mask] - average for move in moves
        ]
        vectors = unit_rows(np.stack(rows))
        return vectors if shifted else vectors[0]

    def full(self, volume: np.ndarray) -> np.ndarray:
        """The full-resolution vector of ``volume`` as it lies, shape (M,)."""
        return unit_rows((volume[self.mask] - self.average[self.mask])[None])[0]

    def shifted(self, volume: np.ndarray) -> np.ndarray:
        """Full-resolution vectors of ``volume`` moved by each of :data:`SHIFTS`, shape (27, M)."""
        return np.stack([self.full(np.roll(volume, shift, axis=(0, 1, 2))) for shift in SHIFTS])


def latent_of(
    autoencoder: torch.nn.Module, volume: np.ndarray, device: torch.device, precision: str = "float32"
) -> np.ndarray:
    """The autoencoder's posterior mean of ``volume`` (on the model's grid), flattened (C * X' * Y' * Z',),
    computed in ``precision`` (the sampling precision: bfloat16 halves the time on CPUs that have it)."""
    from brainsynth.sampling.loop import autocast

    with torch.no_grad(), autocast(device, precision):
        mean, _ = autoencoder.encode(torch.as_tensor(volume, dtype=torch.float32)[None, None].to(device))
    return mean.float().cpu().numpy().reshape(-1)


class LatentSpace:
    """The latent criterion's vectors: latents minus the training latents' mean, at unit length.

    Parameters
    ----------
    average : numpy.ndarray
        The training images' mean latent (flattened).
    """

    def __init__(self, average: np.ndarray) -> None:
        self.average = np.asarray(average, dtype=np.float32)

    def vectors(self, latents: np.ndarray) -> np.ndarray:
        """Unit vectors of ``latents`` (N, L) or of one latent (L,), shape (N, L)."""
        return unit_rows(np.atleast_2d(latents) - self.average)
