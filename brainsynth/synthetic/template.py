"""The MNI152 2009a symmetric template that nilearn ships, as the anatomy of the synthetic cohort.

Maps are read at 1 mm (197 x 233 x 189, RAS) and scaled to [0, 1]: T1 (skull-stripped), grey-matter and
white-matter probabilities. The ventricles are not labelled in the template; they are found as the
cerebrospinal fluid deep inside the brain, near the midline (lateral and third ventricles).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from brainsynth.errors import BrainsynthError

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}

#: Where the ventricles are looked for, in MNI mm: (min, max) per axis.
VENTRICLE_BOX = ((-30.0, 30.0), (-50.0, 35.0), (-8.0, 35.0))


@dataclass(frozen=True)
class Template:
    """Template maps on the template's 1 mm grid.

    Attributes
    ----------
    t1, gm, wm : numpy.ndarray
        float32 (197, 233, 189) in [0, 1].
    ventricles : numpy.ndarray
        float32 binary mask of the lateral and third ventricles.
    affine : numpy.ndarray
        Voxel-to-MNI (RAS, mm) matrix.
    brain_centre : numpy.ndarray
        Centre of the brain's bounding box, mm.
    ventricle_centre : numpy.ndarray
        Centroid of the ventricles, mm.
    csf_intensity : float
        Median T1 intensity inside the ventricles.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    ventricles: np.ndarray
    affine: np.ndarray
    brain_centre: np.ndarray
    ventricle_centre: np.ndarray
    csf_intensity: float

    def world_to_voxel(self, points: np.ndarray) -> np.ndarray:
        """Map (3, ...) MNI coordinates to (3, ...) template voxel coordinates."""
        inverse = np.linalg.inv(self.affine)
        flat = points.reshape(3, -1)
        return (inverse[:3, :3] @ flat + inverse[:3, 3:]).reshape(points.shape)


def template_folder() -> Path:
    """Folder of nilearn's bundled template files."""
    try:
        import nilearn
    except ImportError as exc:
        raise BrainsynthError(
            "the synthetic cohort needs nilearn's MNI152 template: pip install 'brainsynth[training]'"
        ) from exc
    return Path(nilearn.__file__).parent / "datasets" / "data"


def _find_ventricles(t1: np.ndarray, tissue: np.ndarray, affine: np.ndarray) -> np.ndarray:
    brain = t1 > 0
    csf = brain & (tissue < 0.35)
    coords = np.indices(t1.shape, dtype=np.float32).reshape(3, -1)
    world = (affine[:3, :3] @ coords + affine[:3, 3:]).reshape(3, *t1.shape)
    in_box = np.ones(t1.shape, dtype=bool)
    for axis, (low, high) in enumerate(VENTRICLE_BOX):
        in_box &= (world[axis] > low) & (world[axis] < high)
    deep = ndimage.binary_erosion(brain, iterations=12)  # excludes sulcal CSF near the surface
    candidates = csf & in_box & deep
    labels, count = ndimage.label(candidates)
    sizes = ndimage.sum(candidates, labels, range(1, count + 1))
    return np.isin(labels, 1 + np.flatnonzero(sizes > 500))


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Read the template maps and find the ventricles (cached; about 2 s)."""
    folder = template_folder()
    images = {}
    for key, name in _FILES.items():
        path = folder / name
        if not path.is_file():
            raise BrainsynthError(f"nilearn's template file {path} is missing; reinstall nilearn")
        images[key] = nib.load(path)
    affine = images["t1"].affine
    t1, gm, wm = (np.asarray(images[k].get_fdata(), dtype=np.float32) / 255.0 for k in ("t1", "gm", "wm"))
    ventricles = _find_ventricles(t1, gm + wm, affine)
    brain = np.argwhere(t1 > 0)
    to_world = lambda v: affine[:3, :3] @ v + affine[:3, 3]  # noqa: E731
    brain_centre = (to_world(brain.min(0)) + to_world(brain.max(0))) / 2.0
    ventricle_centre = to_world(np.argwhere(ventricles).mean(0))
    return Template(
        t1=t1,
        gm=gm,
        wm=wm,
        ventricles=ventricles.astype(np.float32),
        affine=affine,
        brain_centre=brain_centre,
        ventricle_centre=ventricle_centre,
        csf_intensity=float(np.median(t1[ventricles])),
    )
