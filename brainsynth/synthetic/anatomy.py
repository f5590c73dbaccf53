"""One synthetic subject: its drawn parameters, its anatomy on a grid, and its measured volumes.

A subject's parameters are drawn once (:func:`draw_subject`) and recorded, so every subject can be
remade exactly (:func:`synthesize_subject`). Anatomy follows the covariates:

- head size differs by sex (a global scale ``s``);
- the ventricles enlarge with age, with individual variation: the template is magnified around
  the ventricles' centroid by ``1 + alpha * w(p)``, where ``w`` is a smooth map of the ventricles;
- grey and white matter thin with age and sulci widen: tissue probability ``P = GM + WM`` becomes
  ``max(P - tau, 0) / (1 - tau)``, so partial-volume tissue next to sulci turns into CSF first, and grey
  matter loses a further fraction ``g``;
- a smooth random deformation gives individual anatomy; a bias field, a contrast change (gamma) and
  noise make each image look acquired.

Volumes are measured from the synthesised tissue maps: ventricular volume in ml (not normalised), and
brain volume (grey + white matter, ml) normalised for head size by the ratio of the template's
intracranial volume to the subject's.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from brainsynth.synthetic.template import Template, load_template

#: Field of view of the published model, mm.
FIELD_OF_VIEW_MM = (160.0, 224.0, 160.0)

# Template tissue intensities (medians of T1 where the tissue probability exceeds 0.8).
_GM_INTENSITY, _WM_INTENSITY = 0.655, 0.863


@dataclass(frozen=True)
class SubjectParameters:
    """Everything random about one subject; together with the grid it defines the subject exactly.

    Attributes
    ----------
    sex : str
        ``"female"`` or ``"male"``.
    age : float
        Years.
    head_scale : float
        Linear scale of the head relative to the template.
    ventricle_expansion : float
        ``alpha``: magnification of the ventricles minus one.
    tissue_loss : float
        ``tau``: partial-volume threshold of atrophy, 0 (none) to about 0.45.
    grey_matter_loss : float
        ``g``: further fraction of grey matter lost.
    deformation_mm : float
        Standard deviation of the smooth random displacement, mm.
    gamma : float
        Contrast exponent applied to intensities.
    bias_strength : float
        Standard deviation of the log bias field.
    noise_sd : float
        Standard deviation of the Gaussian noise inside the brain, in intensity units.
    field_seed : int
        Seed of the deformation, bias field and noise.
    """

    sex: str
    age: float
    head_scale: float
    ventricle_expansion: float
    tissue_loss: float
    grey_matter_loss: float
    deformation_mm: float
    gamma: float
    bias_strength: float
    noise_sd: float
    field_seed: int

    def to_dict(self) -> dict[str, object]:
        """The parameters as a JSON-serialisable dictionary."""
        return asdict(self)


def draw_subject(rng: np.random.Generator, template_ventricles_ml: float = 16.0) -> SubjectParameters:
    """Draw a subject like one of a UK Biobank imaging cohort (age 44-82, mean about 64; 47 % male).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    template_ventricles_ml : float
        Ventricular volume of the template, to aim the expansion at a target volume.
    """
    male = rng.random() < 0.47
    age = float(np.clip(rng.normal(64.0, 8.5), 44.0, 82.0))
    decade = (age - 44.0) / 38.0  # 0 at 44, 1 at 82
    head_scale = float(rng.normal(1.035 if male else 0.97, 0.025))
    target_ml = 13.0 * np.exp(1.45 * decade + 0.5 * rng.normal()) * (1.1 if male else 1.0)
    expansion = float(np.clip((target_ml / template_ventricles_ml) ** (1 / 3) / head_scale - 1.0, -0.35, 1.3))
    return SubjectParameters(
        sex="male" if male else "female",
        age=round(age, 1),
        head_scale=head_scale,
        ventricle_expansion=expansion,
        tissue_loss=float(np.clip(0.04 + 0.26 * decade + 0.06 * rng.normal(), 0.0, 0.45)),
        grey_matter_loss=float(np.clip(0.1 * decade + 0.03 * rng.normal(), 0.0, 0.2)),
        deformation_mm=float(rng.uniform(1.5, 3.5)),
        gamma=float(rng.uniform(0.85, 1.2)),
        bias_strength=float(rng.uniform(0.02, 0.1)),
        noise_sd=float(rng.uniform(0.005, 0.025)),
        field_seed=int(rng.integers(0, 2**31 - 1)),
    )


def follow_up(params: SubjectParameters, years: float) -> SubjectParameters:
    """The same subject ``years`` later: the age-dependent parameters advanced by the cohort's own age
    model (ventricles by ``exp(1.45 * years / 38)`` in volume, tissue loss by ``0.26`` and grey-matter
    loss by ``0.1`` per 38 years), the subject's own deviations, head, contrast, fields and noise kept.

    Ages beyond the cohort's 44-82 follow the same model; the clips of :func:`draw_subject` still apply.
    """
    step = float(years) / 38.0
    growth = np.exp(1.45 * step / 3.0)  # linear magnification for the ventricular volume's growth
    return SubjectParameters(
        **{
            **asdict(params),
            "age": round(params.age + float(years), 1),
            "ventricle_expansion": float(np.clip((1.0 + params.ventricle_expansion) * growth - 1.0, -0.35, 1.3)),
            "tissue_loss": float(np.clip(params.tissue_loss + 0.26 * step, 0.0, 0.45)),
            "grey_matter_loss": float(np.clip(params.grey_matter_loss + 0.1 * step, 0.0, 0.2)),
        }
    )


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape and RAS affine."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> float:
        return float(abs(self.affine[0, 0]))

    def world(self) -> np.ndarray:
        """World coordinates of every voxel, shape (3, X, Y, Z)."""
        coords = np.indices(self.shape, dtype=np.float32).reshape(3, -1)
        return (self.affine[:3, :3] @ coords + self.affine[:3, 3:]).reshape(3, *self.shape).astype(np.float32)


def cohort_grid(spacing: float = 2.0, template: Template | None = None) -> Grid:
    """The published model's field of view (160 x 224 x 160 mm) at ``spacing`` mm, centred on the brain.

    At 2 mm this is 80 x 112 x 80 voxels.
    """
    template = template or load_template()
    shape = tuple(round(f / spacing) for f in FIELD_OF_VIEW_MM)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = template.brain_centre - (np.asarray(shape) - 1) / 2.0 * spacing
    return Grid(shape=shape, affine=affine)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4)
def _smoothed_maps(spacing: float) -> dict[str, np.ndarray]:
    """Template maps low-pass filtered for resampling at ``spacing`` mm, and the ventricle weight map."""
    template = load_template()
    sigma = max(np.sqrt(max(spacing**2 - 1.0, 0.0)) / 2.355, 0.0)
    maps = {
        k: ndimage.gaussian_filter(getattr(template, k), sigma) if sigma else getattr(template, k)
        for k in ("t1", "gm", "wm", "ventricles")
    }
    # 1 inside the ventricles and a 3 mm margin, falling smoothly to 0 about 10 mm further out.
    region = ndimage.binary_dilation(template.ventricles > 0.5, iterations=3).astype(np.float32)
    maps["weight"] = np.clip(ndimage.gaussian_filter(region, 4.0) / 0.5, 0.0, 1.0).astype(np.float32)
    return maps


def _random_field(rng: np.random.Generator, shape: tuple[int, ...], control: tuple[int, ...], sd: float) -> np.ndarray:
    """A smooth random field: Gaussian values on a coarse grid, interpolated with cubic splines."""
    coarse = rng.normal(0.0, sd, size=control).astype(np.float32)
    zoom = [s / c for s, c in zip(shape, control, strict=True)]
    return ndimage.zoom(coarse, zoom, order=3, mode="nearest")[: shape[0], : shape[1], : shape[2]]


def _sample(volume: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(volume, voxels, order=1, mode="constant", cval=0.0).astype(np.float32)


def synthesize_subject(params: SubjectParameters, grid: Grid) -> dict[str, object]:
    """Make one subject's T1 image and tissue maps on ``grid`` and measure its volumes.

    Returns
    -------
    dict
        ``t1`` (float32 in [0, 1], skull-stripped), ``gm``, ``wm``, ``ventricles`` (probability maps),
        ``ventricular_volume_ml``, ``brain_volume_ml`` (normalised for head size),
        ``brain_volume_raw_ml`` and ``intracranial_volume_ml``.
    """
    template = load_template()
    maps = _smoothed_maps(grid.spacing)
    rng = np.random.default_rng(params.field_seed)
    world = grid.world()

    # 1. Head size and individual anatomy: output point -> template point.
    centre = template.brain_centre.reshape(3, 1, 1, 1).astype(np.float32)
    points = centre + (world - centre) / params.head_scale
    points = points + np.stack([_random_field(rng, grid.shape, (6, 7, 6), params.deformation_mm) for _ in range(3)])
    # 2. Ventricles: magnify around their centroid by 1 + alpha where the magnified ventricles lie,
    #    fading to no change away from them (the weight is read where the point came from).
    v_centre = template.ventricle_centre.reshape(3, 1, 1, 1).astype(np.float32)
    alpha = params.ventricle_expansion
    source = v_centre + (points - v_centre) / (1.0 + alpha) if alpha > 0 else points
    weight = _sample(maps["weight"], template.world_to_voxel(source))
    points = v_centre + (points - v_centre) / (1.0 + alpha * weight)
    voxels = template.world_to_voxel(points)
    t1, gm, wm, ventricles = (_sample(maps[k], voxels) for k in ("t1", "gm", "wm", "ventricles"))

    # 3. Atrophy: partial-volume tissue is lost first (wider sulci), then a fraction of grey matter.
    tissue = gm + wm
    kept = np.clip(tissue - params.tissue_loss, 0.0, None) / (1.0 - params.tissue_loss)
    ratio = np.where(tissue > 1e-3, kept / np.maximum(tissue, 1e-3), 0.0)
    gm_new, wm_new = gm * ratio * (1.0 - params.grey_matter_loss), wm * ratio
    lost = tissue - (gm_new + wm_new)
    tissue_intensity = np.where(tissue > 1e-3, (gm * _GM_INTENSITY + wm * _WM_INTENSITY) / np.maximum(tissue, 1e-3), 0)
    brain = t1 > 0.02
    image = t1 - lost * (tissue_intensity - template.csf_intensity)

    # 4. Acquisition: contrast, bias field, noise; skull-stripped background stays zero.
    image = np.clip(image, 0.0, None) ** params.gamma
    image = image * np.exp(_random_field(rng, grid.shape, (4, 4, 4), params.bias_strength))
    image = image + rng.normal(0.0, params.noise_sd, size=grid.shape).astype(np.float32)
    image = np.where(brain, image, 0.0)
    image = np.clip(image / max(float(np.percentile(image[brain], 99.5)), 1e-6), 0.0, 1.0).astype(np.float32)

    voxel_ml = grid.spacing**3 / 1000.0
    intracranial = float(brain.sum()) * voxel_ml
    template_intracranial = float((template.t1 > 0.02).sum()) / 1000.0
    raw_brain = float((gm_new + wm_new)[brain].sum()) * voxel_ml
    return {
        "t1": image,
        "gm": gm_new.astype(np.float32),
        "wm": wm_new.astype(np.float32),
        "ventricles": ventricles,
        "ventricular_volume_ml": float(ventricles.sum()) * voxel_ml,
        "brain_volume_ml": raw_brain * template_intracranial / intracranial,
        "brain_volume_raw_ml": raw_brain,
        "intracranial_volume_ml": intracranial,
    }
