"""Four-component gradient-based structural similarity (4-G-R-SSIM) of 3D volumes.

The second structural metric of the paper's Table 1, after Li and Bovik, "Content-partitioned
structural similarity index for image quality assessment" (Signal Processing: Image Communication 25,
2010), built on the gradient-based SSIM of Chen, Yang and Xie (ICIP 2006), here in 3D:

1. gradient magnitudes of both volumes by the 3D Sobel operator (in intensity units per voxel);
2. a G-SSIM map: the luminance term of SSIM from the intensities, the contrast-structure term from the
   gradient magnitudes, both over a Gaussian window (sigma 1.5 voxels, 7 voxels wide, the window of
   this project's MS-SSIM; "valid" positions only), with the constants of SSIM for data range 1;
3. every voxel put in one of four regions by its gradient magnitude in the reference (``g_r``) and in
   the test volume (``g_t``), against ``T1 = 0.12`` and ``T2 = 0.06`` times the reference's largest
   gradient magnitude: preserved edges (both above ``T1``), changed edges (one above ``T1``, the other
   not), smooth (``g_r < T2`` and ``g_t <= T1``) and texture (the rest);
4. the score: the G-SSIM map's mean in each region, the four means weighted equally (regions without
   voxels drop out and the weights of the others are renormalised).

Like MS-SSIM it is 1 for identical volumes and lower the more they differ; over pairs of samples it
measures diversity (close to the real images' value is good). Li and Bovik also studied unequal
weights; the equal weights used here are one of their settings, named so that numbers can be compared.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional

#: Gaussian window of the local statistics (width, sigma), in voxels.
WINDOW_SIZE, WINDOW_SIGMA = 7, 1.5
#: Edge thresholds as fractions of the reference's largest gradient magnitude.
EDGE_THRESHOLD, SMOOTH_THRESHOLD = 0.12, 0.06
#: Weights of preserved edges, changed edges, smooth and texture regions.
REGION_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
_C1, _C2 = 0.01**2, 0.03**2


def _as_volume(array: np.ndarray, name: str) -> torch.Tensor:
    volume = np.asarray(array, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"{name} must be a 3D volume (got shape {volume.shape})")
    if min(volume.shape) < WINDOW_SIZE:
        raise ValueError(f"{name} must be at least {WINDOW_SIZE} voxels along each axis (got shape {volume.shape})")
    return torch.from_numpy(np.clip(volume, 0.0, 1.0))[None, None]


def _along(volume: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Convolve a (1, 1, X, Y, Z) volume with a 1D kernel along one axis ("valid" positions)."""
    shape = [1, 1, 1, 1, 1]
    shape[2 + axis] = len(kernel)
    return functional.conv3d(volume, kernel.reshape(shape))


def sobel_magnitude(volume: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of a (1, 1, X, Y, Z) volume by the 3D Sobel operator, in units per voxel."""
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=volume.dtype) / 4.0
    difference = torch.tensor([1.0, 0.0, -1.0], dtype=volume.dtype) / 2.0  # flipped: conv3d correlates
    padded = functional.pad(volume, (1, 1, 1, 1, 1, 1), mode="replicate")
    squares = torch.zeros_like(volume)
    for axis in range(3):
        out = padded
        for a in range(3):
            out = _along(out, difference if a == axis else smooth, a)
        squares += out**2  # separable: a ramp of slope 1 gives 1
    return squares.sqrt()


def _window(volume: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted local mean at the valid positions, by three 1D convolutions."""
    offsets = torch.arange(WINDOW_SIZE, dtype=volume.dtype) - (WINDOW_SIZE - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * WINDOW_SIGMA**2))
    weights = weights / weights.sum()
    out = volume
    for axis in range(3):
        out = _along(out, weights, axis)
    return out


def _valid(volume: torch.Tensor) -> torch.Tensor:
    half = WINDOW_SIZE // 2
    return volume[..., half:-half, half:-half, half:-half]


def region_masks(reference_gradient: torch.Tensor, test_gradient: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four regions of Li and Bovik from the two gradient-magnitude maps (boolean, same shape)."""
    largest = float(reference_gradient.max())
    edge, smooth = EDGE_THRESHOLD * largest, SMOOTH_THRESHOLD * largest
    ref_edge, test_edge = reference_gradient > edge, test_gradient > edge
    preserved = ref_edge & test_edge
    changed = ref_edge ^ test_edge
    flat = (reference_gradient < smooth) & ~test_edge
    texture = ~(preserved | changed | flat)
    return {"preserved_edges": preserved, "changed_edges": changed, "smooth": flat, "texture": texture}


def gradient_ssim_map(reference: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G-SSIM at the valid window positions, with both gradient-magnitude maps cropped alike."""
    g_ref, g_test = sobel_magnitude(reference), sobel_magnitude(test)
    mu_x, mu_y = _window(reference), _window(test)
    luminance = (2 * mu_x * mu_y + _C1) / (mu_x**2 + mu_y**2 + _C1)
    mg_x, mg_y = _window(g_ref), _window(g_test)
    var_x = (_window(g_ref**2) - mg_x**2).clamp_min(0)
    var_y = (_window(g_test**2) - mg_y**2).clamp_min(0)
    cov = _window(g_ref * g_test) - mg_x * mg_y
    contrast_structure = (2 * cov + _C2) / (var_x + var_y + _C2)
    return luminance * contrast_structure, _valid(g_ref), _valid(g_test)


def four_component_gradient_ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """4-G-R-SSIM of ``test`` against ``reference`` (3D volumes with intensities about [0, 1]).

    Parameters
    ----------
    reference, test : numpy.ndarray
        Volumes of the same shape, at least 7 voxels along each axis; clipped to [0, 1].

    Returns
    -------
    float
        1 for identical volumes; lower the more they differ.
    """
    if np.shape(reference) != np.shape(test):
        raise ValueError(f"volumes must have the same shape (got {np.shape(reference)} and {np.shape(test)})")
    x, y = _as_volume(reference, "reference"), _as_volume(test, "test")
    with torch.no_grad():
        similarity, g_ref, g_test = gradient_ssim_map(x, y)
        masks = region_masks(g_ref, g_test)
        total, weight = 0.0, 0.0
        for w, mask in zip(REGION_WEIGHTS, masks.values(), strict=True):
            if bool(mask.any()):
                total += w * float(similarity[mask].mean())
                weight += w
    return total / weight


def mean_pairwise_gradient_ssim(volumes: Sequence[np.ndarray], max_pairs: int = 200) -> float:
    """Mean 4-G-R-SSIM over pairs of volumes (the first ``max_pairs`` in a fixed order; the first of
    each pair is the reference): the paper's second diversity measure."""
    pairs = list(itertools.combinations(range(len(volumes)), 2))[:max_pairs]
    return float(np.mean([four_component_gradient_ssim(volumes[i], volumes[j]) for i, j in pairs]))
