"""Static figures of edits of a scan: before, after and the signed change, on the scan's own grid.

The slices are taken in the scan's own voxels, turned to RAS for display, through the centre of the
change (where the edit did most), unless positions are given. The change is drawn blue (darker) to red
(brighter), white at zero, symmetric about zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from brainsynth.jupyter.views import VIEWS
from brainsynth.scans.results import EditResult
from brainsynth.scans.scan import Scan

DIFFERENCE_CMAP = "RdBu_r"


def _ras(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import nibabel as nib

    return nib.orientations.apply_orientation(volume, nib.orientations.io_orientation(affine))


def _centre(change: np.ndarray) -> tuple[int, int, int]:
    """Where the change is: the centre of mass of its largest 1 % (the volume's centre when there is none)."""
    size = np.abs(change)
    if not np.any(size):
        return tuple(s // 2 for s in change.shape)
    strong = size >= np.percentile(size[size > 0], 99)
    return tuple(round(float(c.mean())) for c in np.nonzero(strong))


def _plane(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    return np.rot90(np.take(volume, index, axis=VIEWS.index(view)))


def describe_change(result: EditResult, index: int) -> str:
    """What edit ``index`` changed, e.g. ``age 75, ventricular_volume 90`` (``nothing`` when it changed nothing)."""
    target = result.targets[index]
    changed = [(k, v) for k, v in target.items() if v != result.source.get(k)]
    return ", ".join(v if isinstance(v, str) else f"{k} {v:g}" for k, v in changed) or "nothing"


def _volumes(measured: dict[str, float]) -> str:
    parts = [f"{name.split('_')[0]} {value:.0f} ml" for name, value in measured.items()]
    return ", ".join(parts)


def show_edit(
    result: EditResult,
    scan: Scan,
    index: int = 0,
    *,
    positions: Sequence[int] | None = None,
    views: Sequence[str] = VIEWS,
) -> plt.Figure:
    """Edit ``index`` of ``result`` beside the scan and the signed change, one row per view.

    Parameters
    ----------
    result : EditResult
        From ``model.edit(scan, ...)``.
    scan : Scan
        The scan that was edited.
    index : int
        Which edit of a traversal.
    positions : sequence of int, optional
        Slice indices (sagittal, coronal, axial) in the RAS-turned scan grid; default: through the change.
    views : sequence of str
        Which of ``"sagittal"``, ``"coronal"``, ``"axial"`` to show.

    Returns
    -------
    matplotlib.figure.Figure
    """
    affine = scan.original_affine
    before, after = _ras(scan.original, affine), _ras(result.on_scan[index], affine)
    change = _ras(result.differences_on_scan[index], affine)
    where = tuple(positions) if positions is not None else _centre(change)
    low, high = np.percentile(before, [0.5, 99.5])
    span = max(float(np.abs(change).max()), 1e-6)
    target = describe_change(result, index)
    titles = [
        f"scan ({_volumes(result.measured_source)})" if result.measured_source else "scan",
        f"edited ({_volumes(result.measured[index])})" if result.measured else "edited",
        f"change (+-{span:.3g})",
    ]
    figure, axes = plt.subplots(len(views), 3, figsize=(9.6, 3.2 * len(views)), squeeze=False, layout="constrained")
    for row, view in zip(axes, views, strict=True):
        position = where[VIEWS.index(view)]
        row[0].imshow(_plane(before, view, position), cmap="gray", vmin=low, vmax=high)
        row[1].imshow(_plane(after, view, position), cmap="gray", vmin=low, vmax=high)
        shown = row[2].imshow(_plane(change, view, position), cmap=DIFFERENCE_CMAP, vmin=-span, vmax=span)
        for axis, title in zip(row, titles, strict=True):
            axis.set_title(f"{title}\n{view}" if view == views[0] else view, fontsize=8)
            axis.axis("off")
    figure.colorbar(shown, ax=axes[:, 2].tolist(), shrink=0.6, label="edit - round trip")
    figure.suptitle(f"{scan.path}: edited to {target} (strength {result.settings.get('strength')})", fontsize=10)
    return figure


def show_edit_traversal(
    result: EditResult, scan: Scan, *, view: str = "coronal", position: int | None = None
) -> plt.Figure:
    """Every edit of a traversal in one view: the edited scans above, their changes below.

    Parameters
    ----------
    result : EditResult
        Several edits of one scan (``model.edit(scan, [{"age": 50}, {"age": 70}, ...])``).
    scan : Scan
        The scan that was edited.
    view : {"sagittal", "coronal", "axial"}
        The plane shown.
    position : int, optional
        Slice index in the RAS-turned scan grid; default: through the largest change.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)} (got {view!r})")
    affine = scan.original_affine
    changes = [_ras(d, affine) for d in result.differences_on_scan]
    largest = int(np.argmax([np.abs(c).max() for c in changes]))
    index = position if position is not None else _centre(changes[largest])[VIEWS.index(view)]
    low, high = np.percentile(scan.original, [0.5, 99.5])
    span = max(max(float(np.abs(c).max()) for c in changes), 1e-6)
    count = len(result)
    figure, axes = plt.subplots(2, count, figsize=(2.6 * count, 5.6), squeeze=False)
    for column, (edited, change) in enumerate(zip(result.on_scan, changes, strict=True)):
        label = describe_change(result, column).replace("nothing", "as the scan")
        if result.measured:
            label += f"\n{_volumes(result.measured[column])}"
        axes[0, column].imshow(_plane(_ras(edited, affine), view, index), cmap="gray", vmin=low, vmax=high)
        axes[0, column].set_title(label, fontsize=8)
        axes[1, column].imshow(_plane(change, view, index), cmap=DIFFERENCE_CMAP, vmin=-span, vmax=span)
        for axis in axes[:, column]:
            axis.axis("off")
    figure.suptitle(f"{scan.path}: {count} edits, {view} (change below, +-{span:.3g})", fontsize=10)
    figure.tight_layout()
    return figure
