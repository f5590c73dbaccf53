"""Exporting a model as a MONAI bundle folder, in the layout of the published model's bundle.

The bundle holds ``configs/inference.json`` (network definitions MONAI's ``ConfigParser`` instantiates,
weight loading, scheduler, noise shape, scale factor), ``configs/metadata.json``,
``configs/brainsynth.json`` (the full model configuration: covariates, affine), ``models/autoencoder.pt``
and ``models/model.pt`` (state dicts in current MONAI format) and ``docs/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch

from brainsynth._version import __version__
from brainsynth.errors import InvalidParameterError
from brainsynth.files.atomic import staged_directory
from brainsynth.files.replace import check_replaceable
from brainsynth.loading.bundle import parsed_strings
from brainsynth.loading.model_dir import default_model_card
from brainsynth.model import LatentDiffusionModel

BRAINSYNTH_CONFIG = Path("configs") / "brainsynth.json"
#: The entries of inference.json that brainsynth itself writes as expressions or references.
_OWN_EXPRESSIONS = frozenset(
    {
        "imports",
        "model_dir",
        "output_dir",
        "device",
        "conditioning",
        "network_def",
        "load_autoencoder_path",
        "load_autoencoder",
        "autoencoder",
        "load_diffusion_path",
        "load_diffusion",
        "diffusion",
        "noise",
        "set_timesteps",
        "scheduler._requires_",
    }
)


def refuse_parsed_strings(data: Any, where: str = "", own: frozenset[str] = frozenset()) -> None:
    """Refuse any string that MONAI's ConfigParser would evaluate, look up or include, except brainsynth's own.

    Raises
    ------
    InvalidParameterError
        Naming the entry and its value: a model whose settings or texts would run code in a bundle.
    """
    for place, text in parsed_strings(data, where, skip=own):
        raise InvalidParameterError(
            f"the model's {place} is {text[:60]!r}, which MONAI's ConfigParser would evaluate or resolve; a bundle "
            "holds plain data only, so this model cannot be exported"
        )


def _inference_config(model: LatentDiffusionModel) -> dict[str, Any]:
    config = model.config
    defaults = [
        spec.normalise(spec.choices.index(spec.default) if spec.categorical else spec.default)
        if spec.default is not None
        else 0.5
        for spec in config.covariates
    ]
    schedule = config.noise_schedule
    return {
        "imports": ["$import torch", "$from datetime import datetime", "$from pathlib import Path"],
        "bundle_root": ".",
        "model_dir": "$@bundle_root + '/models'",
        "output_dir": "$@bundle_root + '/output'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "covariates": defaults,
        "conditioning": "$torch.tensor([@covariates], dtype=torch.float32).to(@device).unsqueeze(1)",
        "scale_factor": config.scale_factor,
        "autoencoder_def": {"_target_": "monai.networks.nets.AutoencoderKL", **config.autoencoder},
        "network_def": "@autoencoder_def",
        "load_autoencoder_path": "$@model_dir + '/autoencoder.pt'",
        "load_autoencoder": "$@autoencoder_def.load_state_dict(torch.load(@load_autoencoder_path, "
        "map_location='cpu', weights_only=True))",
        "autoencoder": "$@autoencoder_def.to(@device)",
        "diffusion_def": {"_target_": "monai.networks.nets.DiffusionModelUNet", **config.unet},
        "load_diffusion_path": "$@model_dir + '/model.pt'",
        "load_diffusion": "$@diffusion_def.load_state_dict(torch.load(@load_diffusion_path, "
        "map_location='cpu', weights_only=True))",
        "diffusion": "$@diffusion_def.to(@device)",
        "scheduler": {
            "_target_": "monai.networks.schedulers.DDIMScheduler",
            "_requires_": ["@load_diffusion", "@load_autoencoder"],
            "num_train_timesteps": schedule.num_train_timesteps,
            "schedule": schedule.schedule,
            "beta_start": schedule.beta_start,
            "beta_end": schedule.beta_end,
            "prediction_type": schedule.prediction_type,
            "clip_sample": False,
        },
        "noise": f"$torch.randn({(1, *config.latent_shape)}).to(@device)",
        "set_timesteps": f"$@scheduler.set_timesteps(num_inference_steps={config.default_steps})",
    }


def _metadata(model: LatentDiffusionModel) -> dict[str, Any]:
    config = model.config
    names = ", ".join(f"{c.name} ({c.describe_range()})" for c in config.covariates)
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "1.0.0",
        "changelog": {"1.0.0": f"exported by brainsynth {__version__}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {},
        "task": "Conditional synthesis of 3D brain MRI with a latent diffusion model",
        "description": config.description or f"Latent diffusion model {config.name}",
        "authors": "brainsynth",
        "copyright": "See the model card",
        "network_data_format": {
            "inputs": {
                "latent": {
                    "type": "image",
                    "format": "magnitude",
                    "num_channels": config.latent_shape[0],
                    "spatial_shape": list(config.latent_shape[1:]),
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": False,
                    "channel_def": {},
                },
                "conditioning": {
                    "type": "vector",
                    "format": "normalised covariates",
                    "num_channels": 1,
                    "spatial_shape": [len(config.covariates)],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": names},
                },
            },
            "outputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "num_channels": 1,
                    "spatial_shape": list(config.image_shape),
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": "T1w"},
                }
            },
        },
    }


def export_bundle(model: LatentDiffusionModel, output: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` as a MONAI bundle folder.

    Parameters
    ----------
    model : LatentDiffusionModel
        The model to export.
    output : str or Path
        Bundle folder; its parent must exist.
    overwrite : bool
        Replace an existing folder.

    Returns
    -------
    Path
        The bundle folder, which :func:`brainsynth.load_model` and MONAI's ``ConfigParser`` both read.
    """
    output = check_replaceable(
        output, "bundle", overwrite=overwrite, inputs={"the model's own folder": model.source or None}
    )
    inference, metadata = _inference_config(model), _metadata(model)
    refuse_parsed_strings(inference, own=_OWN_EXPRESSIONS)
    refuse_parsed_strings(metadata)
    refuse_parsed_strings(model.config.to_dict())
    with staged_directory(output, overwrite=True) as staging:
        for folder in ("configs", "models", "docs"):
            (staging / folder).mkdir()
        torch.save({k: v.cpu() for k, v in model.autoencoder.state_dict().items()}, staging / "models/autoencoder.pt")
        torch.save({k: v.cpu() for k, v in model.unet.state_dict().items()}, staging / "models/model.pt")
        (staging / "configs/inference.json").write_text(json.dumps(inference, indent=4) + "\n")
        (staging / "configs/metadata.json").write_text(json.dumps(metadata, indent=4) + "\n")
        (staging / BRAINSYNTH_CONFIG).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
        (staging / "docs/README.md").write_text(default_model_card(model))
    return output
