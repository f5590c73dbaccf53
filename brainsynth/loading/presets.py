"""Known configurations: the published UK Biobank model of Pinaya et al. (2022).

The covariate ranges are the min-max normalisation bounds of the model's training set; the affine is
derived from the model authors' own NIfTI saver (see :data:`UKB_AFFINE`).
"""

from __future__ import annotations

import numpy as np

from brainsynth.config import ModelConfig, NoiseSchedule
from brainsynth.covariates import CovariateSpec

#: Name of the MONAI model-zoo bundle that holds the published weights.
UKB_BUNDLE_NAME = "brain_image_synthesis_latent_diffusion_model"

UKB_COVARIATES: tuple[CovariateSpec, ...] = (
    CovariateSpec(
        name="sex",
        label="Sex",
        unit="",
        low=0.0,
        high=1.0,
        default="female",
        choices=("female", "male"),
        description="Sex as coded by UK Biobank: female 0, male 1.",
    ),
    CovariateSpec(
        name="age",
        label="Age",
        unit="years",
        low=44.0,
        high=82.0,
        default=64.0,
        description="Age at imaging; the training cohort's mean was 63.6 years.",
    ),
    CovariateSpec(
        name="ventricular_volume",
        label="Ventricular volume",
        unit="ml",
        low=6.99568,
        high=171.375,
        default=40.0,
        description="Volume of ventricular cerebrospinal fluid (UK Biobank field 25004), not normalised for head size.",
    ),
    CovariateSpec(
        name="brain_volume",
        label="Brain volume",
        unit="ml",
        low=1144.24,
        high=1793.91,
        default=1404.0,
        description="Grey plus white matter volume normalised for head size (UK Biobank field 25009).",
    ),
)

#: The participants.tsv column of each published-model covariate in a cohort folder (brainsynth's
#: synthetic cohort writes these).
UKB_COLUMNS = {
    "sex": "sex",
    "age": "age",
    "ventricular_volume": "ventricular_volume_ml",
    "brain_volume": "brain_volume_ml",
}

#: Covariate sets a training configuration can name, with the participants.tsv column of each covariate.
COVARIATE_SETS: dict[str, tuple[tuple[CovariateSpec, ...], dict[str, str]]] = {"ukb": (UKB_COVARIATES, UKB_COLUMNS)}


def _ukb_affine() -> tuple[tuple[float, ...], ...]:
    # The authors' saver cropped the 160 x 224 x 160 output to [5:-5, 5:-5, :-15] and wrote the crop
    # with this affine. Voxel (i, j, k) of the full grid is voxel (i - 5, j - 5, k) of the crop, so the
    # full grid's affine is the crop's affine times a translation by (-5, -5, 0) voxels.
    cropped = np.array(
        [
            [-1.0, 0.0, 0.0, 96.48149872],
            [0.0, 1.0, 0.0, -141.47715759],
            [0.0, 0.0, 1.0, -156.55375671],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    shift = np.eye(4)
    shift[:3, 3] = (-5.0, -5.0, 0.0)
    full = cropped @ shift
    return tuple(tuple(float(v) for v in row) for row in full)


#: Voxel-to-world affine of the published model's 160 x 224 x 160 output, 1 mm, axes L-A-S.
UKB_AFFINE = _ukb_affine()

UKB_AUTOENCODER = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 1,
    "latent_channels": 3,
    "channels": [64, 128, 128, 128],
    "num_res_blocks": 2,
    "norm_num_groups": 32,
    "norm_eps": 1e-6,
    "attention_levels": [False, False, False, False],
    "with_encoder_nonlocal_attn": False,
    "with_decoder_nonlocal_attn": False,
}

UKB_UNET = {
    "spatial_dims": 3,
    "in_channels": 7,
    "out_channels": 3,
    "channels": [256, 512, 768],
    "num_res_blocks": 2,
    "attention_levels": [False, True, True],
    "norm_num_groups": 32,
    "norm_eps": 1e-6,
    "resblock_updown": True,
    "num_head_channels": [0, 512, 768],
    "with_conditioning": True,
    "transformer_num_layers": 1,
    "cross_attention_dim": 4,
    "upcast_attention": True,
}

UKB_DESCRIPTION = (
    "Latent diffusion model of Pinaya et al. (2022) trained on 31,740 UK Biobank T1-weighted brain MRI "
    "(1 mm, MNI space, 160 x 224 x 160), conditioned on sex, age, ventricular volume and brain volume."
)


def ukb_config(**overrides: object) -> ModelConfig:
    """Return the configuration of the published UK Biobank model.

    Parameters
    ----------
    **overrides
        Fields of :class:`~brainsynth.config.ModelConfig` to replace, e.g. ``unet=...`` for a bundle
        whose network settings differ.
    """
    fields: dict[str, object] = {
        "name": "ukb",
        "description": UKB_DESCRIPTION,
        "autoencoder": dict(UKB_AUTOENCODER),
        "unet": dict(UKB_UNET),
        "noise_schedule": NoiseSchedule(),
        "latent_shape": (3, 20, 28, 20),
        "image_shape": (160, 224, 160),
        "affine": UKB_AFFINE,
        "covariates": UKB_COVARIATES,
        "conditioning": "concat+crossattn",
        "scale_factor": 1.0,
        "default_steps": 50,
        "default_scheduler": "ddim",
    }
    fields.update(overrides)
    return ModelConfig(**fields)  # type: ignore[arg-type]
