"""Models for the widgets: which are available, loaded once and shared by every widget."""

from __future__ import annotations

import functools

from brainsynth import LatentDiffusionModel, load_model
from brainsynth.errors import BrainsynthError
from brainsynth.loading.hub import MODEL_NAMES, find_named_model


def available_models() -> list[str]:
    """Named models installed here (``demo``, ``ukb``), in that order."""
    names = []
    for name in MODEL_NAMES:
        try:
            find_named_model(name)
        except BrainsynthError:
            continue
        names.append(name)
    return names


@functools.lru_cache(maxsize=4)
def get_model(name_or_path: str) -> LatentDiffusionModel:
    """Load a model once per session (by name or folder path)."""
    return load_model(name_or_path)
