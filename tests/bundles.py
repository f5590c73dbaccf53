"""The two public layouts of the published bundle, written with tiny networks for the tests.

Each writer lays out ``configs/inference.json``, ``large_files.yml`` and the weight files with the
exact keys, ``_target_`` names, ``$`` expressions and file names of its source; only the network sizes
and the noise shape are the tiny ones of :mod:`tests.tiny`. The weights are those of MONAI
GenerativeModels' old classes (the old key format both layouts ship).

- MONAI model zoo: Project-MONAI/model-zoo, ``models/brain_image_synthesis_latent_diffusion_model``
  (``configs/inference.json`` and ``large_files.yml``, bundle 1.0.0).
- GenerativeModels: Project-MONAI/GenerativeModels,
  ``model-zoo/models/brain_image_synthesis_latent_diffusion_model`` (same two files).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from tests.tiny import TINY_AUTOENCODER, TINY_UNET

BUNDLE_LAYOUTS = ("model-zoo", "generative")

_HEAD = {
    "imports": ["$import torch", "$from datetime import datetime", "$from pathlib import Path"],
    "bundle_root": ".",
}
_CONDITIONING = {
    "model_dir": "$@bundle_root + '/models'",
    "output_dir": "$@bundle_root + '/output'",
    "create_output_dir": "$Path(@output_dir).mkdir(exist_ok=True)",
    "gender": 0.0,
    "age": 0.1,
    "ventricular_vol": 0.2,
    "brain_vol": 0.4,
    "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
    "conditioning": "$torch.tensor([[@gender, @age, @ventricular_vol, @brain_vol]]).to(@device).unsqueeze(1)",
    "out_file": "$datetime.now().strftime('sample_%H%M%S_%d%m%Y') + '_' + str(@gender) + '_' + str(@age) + '_' "
    "+ str(@ventricular_vol) + '_' + str(@brain_vol)",
}


def _networks(module: str, channels_key: str) -> tuple[dict, dict]:
    autoencoder = {"_target_": f"{module}.networks.nets.AutoencoderKL"}
    for key, value in TINY_AUTOENCODER.items():
        autoencoder[channels_key if key == "channels" else key] = value
    unet = {"_target_": f"{module}.networks.nets.DiffusionModelUNet"}
    for key, value in TINY_UNET.items():
        unet[channels_key if key == "channels" else key] = value
    unet["use_flash_attention"] = False
    return autoencoder, unet


def _scheduler(module: str) -> dict:
    return {
        "_target_": f"{module}.networks.schedulers.DDIMScheduler",
        "_requires_": ["@load_diffusion", "@load_autoencoder"],
        "beta_start": 0.0015,
        "beta_end": 0.0205,
        "num_train_timesteps": 1000,
        "schedule": "scaled_linear_beta",
        "clip_sample": False,
    }


def model_zoo_config(steps: int = 50, noise_shape: tuple[int, ...] = (1, 3, 8, 8, 8)) -> dict:
    """``configs/inference.json`` of the MONAI model-zoo layout."""
    autoencoder, unet = _networks("monai", "channels")
    return {
        **_HEAD,
        "dataset_dir": "",
        "dataset": "",
        "evaluator": "",
        "inferer": "",
        "load_old": 1,
        **_CONDITIONING,
        "autoencoder_def": autoencoder,
        "network_def": "@autoencoder_def",
        "load_autoencoder_path": "$@model_dir + '/autoencoder.pt'",
        "load_autoencoder_func": "$@autoencoder_def.load_old_state_dict if bool(@load_old) else "
        "@autoencoder_def.load_state_dict",
        "load_autoencoder": "$@load_autoencoder_func(torch.load(@load_autoencoder_path))",
        "autoencoder": "$@autoencoder_def.to(@device)",
        "diffusion_def": unet,
        "load_diffusion_path": "$@model_dir + '/model.pt'",
        "load_diffusion_func": "$@diffusion_def.load_old_state_dict if bool(@load_old) else "
        "@diffusion_def.load_state_dict",
        "load_diffusion": "$@load_diffusion_func(torch.load(@load_diffusion_path))",
        "diffusion": "$@diffusion_def.to(@device)",
        "scheduler": _scheduler("monai"),
        "noise": f"$torch.randn({tuple(noise_shape)}).to(@device)",
        "set_timesteps": f"$@scheduler.set_timesteps(num_inference_steps={steps})",
        "sampler": {"_target_": "scripts.sampler.Sampler", "_requires_": "@set_timesteps"},
        "sample": "$@sampler.sampling_fn(@noise, @autoencoder, @diffusion, @scheduler, @conditioning)",
        "saver": {
            "_target_": "SaveImage",
            "_requires_": "@create_output_dir",
            "output_dir": "@output_dir",
            "output_postfix": "@out_file",
        },
        "run": "$@saver(@sample[0][0])",
    }


def generative_config(steps: int = 50, noise_shape: tuple[int, ...] = (1, 3, 8, 8, 8)) -> dict:
    """``configs/inference.json`` of the MONAI GenerativeModels layout."""
    autoencoder, unet = _networks("generative", "num_channels")
    return {
        **_HEAD,
        **_CONDITIONING,
        "autoencoder_def": autoencoder,
        "load_autoencoder_path": "$@model_dir + '/autoencoder.pth'",
        "load_autoencoder": "$@autoencoder_def.load_state_dict(torch.load(@load_autoencoder_path))",
        "autoencoder": "$@autoencoder_def.to(@device)",
        "diffusion_def": unet,
        "load_diffusion_path": "$@model_dir + '/diffusion_model.pth'",
        "load_diffusion": "$@diffusion_def.load_state_dict(torch.load(@load_diffusion_path))",
        "diffusion": "$@diffusion_def.to(@device)",
        "scheduler": _scheduler("generative"),
        "noise": f"$torch.randn({tuple(noise_shape)}).to(@device)",
        "set_timesteps": f"$@scheduler.set_timesteps(num_inference_steps={steps})",
        "sampler": {"_target_": "scripts.sampler.Sampler", "_requires_": "@set_timesteps"},
        "sample": "$@sampler.sampling_fn(@noise, @autoencoder, @diffusion, @scheduler, @conditioning)",
        "saver": {
            "_target_": "scripts.saver.NiftiSaver",
            "_requires_": "@create_output_dir",
            "output_dir": "@output_dir",
        },
        "save_nii": "$@saver.save(@sample, @out_file)",
        "save": "$torch.save(@sample, @output_dir + '/' + @out_file + '.pt')",
    }


#: Per layout: its config, the weight files (autoencoder, U-Net) and whether large_files.yml has md5 sums.
_LAYOUTS = {
    "model-zoo": (model_zoo_config, ("models/autoencoder.pt", "models/model.pt"), True),
    "generative": (generative_config, ("models/autoencoder.pth", "models/diffusion_model.pth"), False),
}
_URL = "https://drive.google.com/uc?export=download&id=0"


def write_layout(directory: Path, layout: str, autoencoder, unet, *, steps: int = 50) -> Path:
    """Write a bundle folder in ``layout`` (one of :data:`BUNDLE_LAYOUTS`) with the given old-class networks."""
    make_config, files, with_md5 = _LAYOUTS[layout]
    (directory / "configs").mkdir(parents=True)
    (directory / "models").mkdir()
    lines = ["large_files:"]
    for relative, network in zip(files, (autoencoder, unet), strict=True):
        torch.save(network.state_dict(), directory / relative)
        digest = hashlib.md5((directory / relative).read_bytes()).hexdigest() if with_md5 else ""
        lines += [
            f'  - path: "{relative}"',
            f'    url: "{_URL}"',
            f'    hash_val: "{digest}"',
            f'    hash_type: "{"md5" if with_md5 else ""}"',
        ]
    (directory / "large_files.yml").write_text("\n".join(lines) + "\n")
    (directory / "configs" / "inference.json").write_text(json.dumps(make_config(steps), indent=4) + "\n")
    return directory
