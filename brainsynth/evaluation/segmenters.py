"""The segmenter an evaluation measures samples with: brainsynth's volumetry or a user's function."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from brainsynth.errors import InvalidParameterError

#: Covariates whose fidelity can be measured, and the field of the segmenter's result that measures each.
MEASURABLE = {"ventricular_volume": "ventricular_volume_ml", "brain_volume": "brain_volume_ml"}
Segmenter = Callable[[np.ndarray, np.ndarray], Any]


def load_segmenter(spec: str | None) -> Segmenter:
    """Import a segmenter given as ``"package.module:function"`` (default: brainsynth's volumetry).

    The function takes ``(volume, affine)`` and returns an object or mapping with the fields
    ``ventricular_volume_ml`` and ``brain_volume_ml``.
    """
    if spec is None:
        from brainsynth.evaluation.volumetry import measure_volumes

        return measure_volumes
    module_name, sep, function = spec.partition(":")
    if not sep:
        raise InvalidParameterError(f"segmenter must look like package.module:function (got {spec!r})")
    try:
        found = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise InvalidParameterError(f"segmenter {spec!r} cannot be imported: {exc}") from exc
    try:
        inspect.signature(found).bind(np.zeros((1, 1, 1)), np.eye(4))
    except TypeError as exc:
        raise InvalidParameterError(f"segmenter {spec!r} must be a function taking (volume, affine) ({exc})") from None
    except ValueError:  # a callable without a signature (some built-ins): it is tried on the first image
        pass
    return found


def field_of(measured: Any, name: str) -> float:
    """The field ``name`` of a segmenter's result (an object or a mapping), as a float."""
    return float(measured[name] if isinstance(measured, dict) else getattr(measured, name))
