"""Static figures, written as PNG: orthogonal slices of volumes (Pillow) and scatter plots of measured
against requested values (matplotlib, imported when one is drawn).

Pillow is a core dependency (napari and matplotlib depend on it too), so the headless ``explore``,
the training samples and the evaluation report draw the same picture whichever extra is installed.
Each panel is drawn at its physical aspect (voxel sizes from the affine), every panel of a figure at
the same scale in pixels per millimetre.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainsynth.files.atomic import atomic_write_bytes

#: Height in pixels of the tallest panel (the largest physical extent of the figure's volumes).
PANEL_SIZE = 180
#: Pixels between panels, and the height of a title band.
GAP = 4
TITLE_HEIGHT = 16


def _ras_slices(volume: np.ndarray, affine: np.ndarray) -> list[tuple[np.ndarray, tuple[float, float]]]:
    """Sagittal, coronal and axial centre slices oriented for display (RAS), each with its pixel size in mm
    as (width, height)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(volume, ornt)
    zooms = nib.affines.voxel_sizes(affine)[ornt[:, 0].astype(int)]
    cx, cy, cz = (s // 2 for s in ras.shape)
    return [
        (np.rot90(ras[cx]), (zooms[1], zooms[2])),
        (np.rot90(ras[:, cy]), (zooms[0], zooms[2])),
        (np.rot90(ras[:, :, cz]), (zooms[0], zooms[1])),
    ]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow 10.1+: a scalable font shipped with Pillow
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


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
        3D volumes, intensities about [0, 1] (shown as grey from 0 to 1, clipped).
    affines : sequence of numpy.ndarray
        Their (4, 4) affines, used to show every volume in RAS orientation at its physical aspect.
    path : str or Path
        Output PNG file, written atomically.
    titles : sequence of str, optional
        One title per volume, written above its middle panel.
    columns : int
        Volumes per row (each takes three panels).

    Returns
    -------
    Path
        The written file.
    """
    from PIL import Image, ImageDraw

    pairs = zip(volumes, affines, strict=True)
    panels = [_ras_slices(np.asarray(v, dtype=np.float32), np.asarray(a)) for v, a in pairs]
    count = len(panels)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    extent = max(max(image.shape[0] * size[1], image.shape[1] * size[0]) for row in panels for image, size in row)
    scale = PANEL_SIZE / extent  # pixels per mm, the same for every panel
    pictures = []
    for row in panels:
        drawn = []
        for image, (width_mm, height_mm) in row:
            grey = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255).round().astype(np.uint8)
            size = (max(1, round(grey.shape[1] * width_mm * scale)), max(1, round(grey.shape[0] * height_mm * scale)))
            filter_ = Image.Resampling.NEAREST if size[0] >= grey.shape[1] else Image.Resampling.LANCZOS
            drawn.append(Image.fromarray(np.ascontiguousarray(grey), mode="L").resize(size, filter_))
        pictures.append(drawn)
    cell_w = max(sum(p.width for p in drawn) + 2 * GAP for drawn in pictures)
    cell_h = max(p.height for drawn in pictures for p in drawn) + (TITLE_HEIGHT if titles else 0)
    canvas = Image.new("L", (columns * cell_w + (columns - 1) * GAP, rows * cell_h + (rows - 1) * GAP), 0)
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    for index, drawn in enumerate(pictures):
        row, col = divmod(index, columns)
        left, top = col * (cell_w + GAP), row * (cell_h + GAP)
        if titles:
            draw.text((left + cell_w / 2, top + TITLE_HEIGHT / 2), str(titles[index]), fill=255, font=font, anchor="mm")
            top += TITLE_HEIGHT
        x = left
        for picture in drawn:
            canvas.paste(picture, (x, top + (cell_h - (TITLE_HEIGHT if titles else 0) - picture.height) // 2))
            x += picture.width + GAP
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def save_scatter(
    requested: Sequence[float],
    measured: Sequence[float],
    path: str | Path,
    *,
    label: str,
    title: str = "",
    real: Sequence[float] | None = None,
) -> Path:
    """Scatter plot of measured against requested values with the identity line.

    ``real``, when given, holds the same segmenter's measurements of the real images whose recorded
    values were requested; they are drawn as a second series.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.2, 4.0))
    values = [*requested, *measured, *(real or [])]
    low, high = min(values), max(values)
    axis.plot([low, high], [low, high], color="0.6", linewidth=1, label="identity")
    if real:
        axis.scatter(requested, real, s=18, marker="x", color="tab:orange", label="real images")
    axis.scatter(requested, measured, s=18, color="tab:blue", label="samples")
    axis.set_xlabel(f"requested {label.lower()} (ml)")
    axis.set_ylabel(f"measured {label.lower()} (ml)")
    axis.set_title(title, fontsize=9)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
