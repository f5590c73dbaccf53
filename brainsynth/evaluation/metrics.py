"""Image-quality metrics (MONAI's), with the settings used throughout the evaluation.

MS-SSIM uses a 7-voxel Gaussian window and up to 4 scales (all four for volumes of 56 voxels or more
per side, as the demo model's 80 x 112 x 80; fewer for smaller volumes); the scale weights are the
first ones of Wang et al. (2003), renormalised to sum to 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import MultiScaleSSIMMetric, PSNRMetric, SSIMMetric

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363)
MS_SSIM_KERNEL = 7


def ms_ssim_scales(shape: Sequence[int]) -> int:
    """Number of MS-SSIM scales that fit a volume of ``shape`` (1 to 4)."""
    scales = 1
    while scales < len(_MS_SSIM_WEIGHTS) and min(shape) > (MS_SSIM_KERNEL - 1) * 2**scales:
        scales += 1
    return scales


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(np.asarray(a, np.float32))[None, None],
        torch.as_tensor(np.asarray(b, np.float32))[None, None],
    )


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for intensities in [0, 1]."""
    return float(PSNRMetric(max_val=1.0)(*_pair(test, reference)))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """3D structural similarity for intensities in [0, 1]."""
    return float(SSIMMetric(spatial_dims=3, data_range=1.0)(*_pair(test, reference)))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """3D multi-scale structural similarity (4 scales) for intensities in [0, 1]."""
    weights = _MS_SSIM_WEIGHTS[: ms_ssim_scales(np.shape(a))]
    metric = MultiScaleSSIMMetric(
        spatial_dims=3, data_range=1.0, kernel_size=MS_SSIM_KERNEL, weights=tuple(w / sum(weights) for w in weights)
    )
    x, y = _pair(np.clip(a, 0, 1), np.clip(b, 0, 1))
    return float(metric(x, y))


def mean_pairwise_ms_ssim(volumes: Sequence[np.ndarray], max_pairs: int = 200) -> float:
    """Mean MS-SSIM over pairs of volumes: the paper's diversity measure (lower is more diverse).

    Parameters
    ----------
    volumes : sequence of numpy.ndarray
        At least two volumes of equal shape.
    max_pairs : int
        Use at most this many pairs (the first ones in a fixed order).
    """
    pairs = list(itertools.combinations(range(len(volumes)), 2))[:max_pairs]
    return float(np.mean([ms_ssim(volumes[i], volumes[j]) for i, j in pairs]))
