"""Static figures: orthogonal slices of one or more volumes, written as PNG (matplotlib, imported here only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainsynth.atomic import atomic_write_bytes
from brainsynth.errors import BrainsynthError


def _ras_slices(volume: np.ndarray, affine: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices through the centre, oriented for display (RAS)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(volume, ornt)
    cx, cy, cz = (s // 2 for s in ras.shape)
    return [np.rot90(ras[cx]), np.rot90(ras[:, cy]), np.rot90(ras[:, :, cz])]


def save_orthogonal_slices(
    volumes: Sequence[np.ndarray],
    affines: Sequence[np.ndarray],
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    columns: int = 4,
) -> Path:
    """Write a PNG with sagittal, coronal and axial centre slices of each volume.

    Parameters
    ----------
    volumes : sequence of numpy.ndarray
        3D volumes, intensities about [0, 1].
    affines : sequence of numpy.ndarray
        Their (4, 4) affines, used to show every volume in RAS orientation.
    path : str or Path
        Output PNG file.
    titles : sequence of str, optional
        One title per volume.
    columns : int
        Volumes per row (each takes three panels).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BrainsynthError("figures need matplotlib: pip install matplotlib") from exc
    import io

    count = len(volumes)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, 3 * columns, figsize=(3 * columns * 1.6, rows * 1.9), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, (volume, affine) in enumerate(zip(volumes, affines, strict=True)):
        row, col = divmod(index, columns)
        for view, image in enumerate(_ras_slices(np.asarray(volume), np.asarray(affine))):
            axes[row, 3 * col + view].imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        if titles:
            axes[row, 3 * col + 1].set_title(titles[index], fontsize=8, color="white")
    figure.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, facecolor="black")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
