"""Sampling results as napari layer data: 3D brains and 4D sweeps, with affine and provenance."""

from __future__ import annotations

from typing import Any

import numpy as np

from brainsynth import SampleResult
from brainsynth.controls import result_title


def brain_layer(result: SampleResult, index: int = 0) -> tuple[np.ndarray, dict[str, Any], str]:
    """One brain of a result as an Image layer: affine from the model, contrast 0-1, provenance in metadata."""
    sidecar = result.sidecar(index)
    kwargs = {
        "name": result_title(result.covariates[index], result.seeds[index]),
        "affine": result.affine,
        "contrast_limits": (0.0, 1.0),
        "colormap": "gray",
        "rendering": "attenuated_mip",
        "attenuation": 0.5,
        "metadata": {"brainsynth": sidecar},
    }
    return result.volumes[index], kwargs, "image"


def series_layer(result: SampleResult, name: str, frame_values: list[Any]) -> tuple[np.ndarray, dict[str, Any], str]:
    """All items of a result as one 4D Image layer (frame, X, Y, Z) for napari's dims slider."""
    affine = np.eye(5)
    affine[1:, 1:] = result.affine
    frames = [result.sidecar(i) for i in range(len(result))]
    kwargs = {
        "name": name,
        "affine": affine,
        "contrast_limits": (0.0, 1.0),
        "colormap": "gray",
        "rendering": "attenuated_mip",
        "attenuation": 0.5,
        "metadata": {"brainsynth": {**frames[0], "frames": frames, "frame_values": frame_values}},
    }
    return result.volumes, kwargs, "image"


def latent_preview_affine(image_affine: np.ndarray, factor: int) -> np.ndarray:
    """Affine of a latent grid ``factor`` times coarser than the image, voxel centres aligned."""
    scale = np.eye(4)
    scale[:3, :3] *= factor
    scale[:3, 3] = (factor - 1) / 2.0
    return image_affine @ scale
