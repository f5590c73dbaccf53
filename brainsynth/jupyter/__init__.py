"""brainsynth in Jupyter: the explorer widget and teaching views (ipywidgets and matplotlib live here only).

Examples
--------
>>> from brainsynth.jupyter import Explorer, ScanEditor, show_traversal  # doctest: +SKIP
>>> Explorer("demo")  # doctest: +SKIP
>>> ScanEditor("/usr/share/mricron/templates/ch2bet.nii.gz", source={"sex": "female", "age": 27})  # doctest: +SKIP
"""

from brainsynth.jupyter.editor import ScanEditor
from brainsynth.jupyter.edits import show_edit, show_edit_traversal
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
from brainsynth.jupyter.volume3d import BrainView, denoising_3d, forward_process_3d, view_3d, view_edit_3d

__all__ = [
    "BrainView",
    "Explorer",
    "ScanEditor",
    "animate",
    "denoising_3d",
    "forward_process_3d",
    "orthogonal_slices",
    "record_denoising",
    "show_denoising",
    "show_edit",
    "show_edit_traversal",
    "show_forward_process",
    "show_interpolation",
    "show_result_grid",
    "show_traversal",
    "view_3d",
    "view_edit_3d",
]
