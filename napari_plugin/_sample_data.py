"""Sample data: one brain from the demo model (File > Open Sample > brainsynth)."""

from __future__ import annotations

from napari_plugin._layers import brain_layer
from napari_plugin._models import get_model


def synthetic_brain():
    """Sample one brain from the demo model with its default covariates and seed 0."""
    data, kwargs, _ = brain_layer(get_model("demo").sample(seed=0))
    return [(data, kwargs)]
