"""Whole heads and skull-stripped brains: telling which one a scan is, from how much of it is tissue."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: A scan whose tissue volume is this many times the model's reference (or its inverse) is of the other kind:
#: a skull-stripped brain is about 1.1-1.6 l of tissue, a whole head (scalp, skull, neck) 2.5-5 l.
KIND_RATIO = 1.6
#: A model whose reference brain has at least this much tissue (ml) makes whole heads.
HEAD_ML = 2500.0


def tissue_ml(volume: np.ndarray, affine: np.ndarray) -> float:
    """The volume in ml of what is not background: voxels above a tenth of the 99.5th percentile,
    largest connected part, holes filled."""
    volume = np.asarray(volume, dtype=np.float32)
    high = float(np.percentile(volume, 99.5))
    if high <= 0:
        return 0.0
    tissue = volume > 0.1 * high
    labels, count = ndimage.label(tissue)
    if count > 1:
        sizes = ndimage.sum(tissue, labels, range(1, count + 1))
        tissue = labels == 1 + int(np.argmax(sizes))
    tissue = ndimage.binary_fill_holes(tissue)
    return float(tissue.sum()) * abs(float(np.linalg.det(np.asarray(affine)[:3, :3]))) / 1000.0


def kind_problem(scan_ml: float, reference_ml: float) -> str | None:
    """Why a scan with ``scan_ml`` of tissue is not of the kind of a model whose reference has ``reference_ml``.

    A model whose reference has less than :data:`HEAD_ML` makes brains; a scan with much more tissue is
    a head. A model whose reference has more makes heads; a scan with much less is a brain (or covers
    only part of a head, which the coverage check would refuse anyway).
    """
    makes_heads = reference_ml >= HEAD_ML
    if not makes_heads and scan_ml > KIND_RATIO * reference_ml:
        return (
            f"the scan looks like a whole head ({scan_ml:.0f} ml of tissue) but the model makes skull-stripped "
            f"brains (its reference has {reference_ml:.0f} ml); give a skull-stripped scan (for example "
            "ch2bet.nii.gz instead of ch2.nii.gz, or strip it with a brain-extraction tool)"
        )
    if makes_heads and scan_ml * KIND_RATIO < reference_ml:
        return (
            f"the scan looks like a skull-stripped brain ({scan_ml:.0f} ml of tissue) but the model makes whole "
            f"heads (its reference has {reference_ml:.0f} ml); give the scan with its skull"
        )
    return None
