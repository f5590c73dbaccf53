"""brainsynth in Jupyter: the explorer widget and teaching views (ipywidgets and matplotlib live here only).

Examples
--------
>>> from brainsynth.jupyter import Explorer, show_traversal  # doctest: +SKIP
>>> Explorer("demo")  # doctest: +SKIP
"""

from brainsynth.jupyter.explorer import Explorer
from brainsynth.jupyter.views import (
    animate,
    orthogonal_slices,
    record_denoising,
    show_denoising,
    show_forward_process,
    show_interpolation,
    show_result_grid,
    show_traversal,
)

__all__ = [
    "Explorer",
    "animate",
    "orthogonal_slices",
    "record_denoising",
    "show_denoising",
    "show_forward_process",
    "show_interpolation",
    "show_result_grid",
    "show_traversal",
]
