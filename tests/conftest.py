"""Shared fixtures: tiny random models as Python objects, brainsynth model folders and MONAI bundles."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")  # figures in tests never open windows, Xvfb or not

from brainsynth.model_dir import save_model_dir
from tests.tiny import TINY_AUTOENCODER, TINY_UNET, tiny_model


def _import_old_classes():
    """MONAI GenerativeModels' old networks. monai-generative 0.2.3 imports a name that MONAI 1.4+
    moved; point it at the new place before importing."""
    import monai.config
    from monai.utils.enums import IgniteInfo

    if not hasattr(monai.config, "IgniteInfo"):
        monai.config.IgniteInfo = IgniteInfo
    from generative.networks.nets import AutoencoderKL, DiffusionModelUNet

    return AutoencoderKL, DiffusionModelUNet


def _old_settings(settings: dict) -> dict:
    renamed = {("num_channels" if k == "channels" else k): v for k, v in settings.items()}
    return renamed


def make_old_networks(seed: int = 0):
    """Tiny networks of the old GenerativeModels classes with random weights (non-zero output layer)."""
    old_autoencoder, old_unet = _import_old_classes()
    torch.manual_seed(seed)
    autoencoder = old_autoencoder(**_old_settings(TINY_AUTOENCODER)).eval()
    unet = old_unet(**_old_settings(TINY_UNET)).eval()
    for name, parameter in unet.named_parameters():
        if name.startswith("out.") or "proj_attn" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    return autoencoder, unet


def write_bundle(directory: Path, autoencoder, unet, *, steps: int = 50, with_md5: bool = True) -> Path:
    """Write a MONAI bundle folder laid out like brain_image_synthesis_latent_diffusion_model, with a small
    inference config and old-format weights."""
    (directory / "configs").mkdir(parents=True)
    (directory / "models").mkdir()
    torch.save(autoencoder.state_dict(), directory / "models" / "autoencoder.pt")
    torch.save(unet.state_dict(), directory / "models" / "model.pt")
    config = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "load_old": 1,
        "model_dir": "$@bundle_root + '/models'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "autoencoder_def": {"_target_": "monai.networks.nets.AutoencoderKL", **TINY_AUTOENCODER},
        "network_def": "@autoencoder_def",
        "load_autoencoder_path": "$@model_dir + '/autoencoder.pt'",
        "diffusion_def": {"_target_": "monai.networks.nets.DiffusionModelUNet", **TINY_UNET,
                          "use_flash_attention": False},
        "load_diffusion_path": "$@model_dir + '/model.pt'",
        "scheduler": {
            "_target_": "monai.networks.schedulers.DDIMScheduler",
            "_requires_": ["@load_diffusion", "@load_autoencoder"],
            "beta_start": 0.0015,
            "beta_end": 0.0205,
            "num_train_timesteps": 1000,
            "schedule": "scaled_linear_beta",
            "clip_sample": False,
        },
        "noise": "$torch.randn((1, 3, 8, 8, 8)).to(@device)",
        "set_timesteps": f"$@scheduler.set_timesteps(num_inference_steps={steps})",
    }
    (directory / "configs" / "inference.json").write_text(json.dumps(config, indent=2))
    if with_md5:
        lines = ["large_files:"]
        for name in ("autoencoder.pt", "model.pt"):
            digest = hashlib.md5((directory / "models" / name).read_bytes()).hexdigest()
            lines += [f'  - path: "models/{name}"', '    url: "https://example.invalid/weights"',
                      f'    hash_val: "{digest}"', '    hash_type: "md5"']
        (directory / "large_files.yml").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture
def model():
    """A tiny random model (16^3 volumes, 3 x 8^3 latents, the published model's covariates)."""
    return tiny_model()


@pytest.fixture
def model_dir(tmp_path, model):
    """The tiny model saved as a brainsynth model folder."""
    return save_model_dir(model, tmp_path / "tiny-model")


@pytest.fixture
def old_networks():
    return make_old_networks()


@pytest.fixture
def bundle_dir(tmp_path, old_networks):
    """A MONAI bundle folder with old-format (GenerativeModels) tiny weights and an md5 list."""
    return write_bundle(tmp_path / "bundle", *old_networks)


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory):
    """A small synthetic cohort on the 8 mm grid the ``tiny`` training preset uses."""
    from brainsynth.synthetic.cohort import generate_cohort

    return generate_cohort(6, tmp_path_factory.mktemp("cohort") / "cohort", spacing=8.0, seed=3)


def write_training_config(path: Path, **changes) -> Path:
    """The ``tiny`` preset with changes per section, e.g. ``autoencoder={"steps": 40}``."""
    from brainsynth.training.config import PRESETS_DIR

    config = json.loads((PRESETS_DIR / "tiny.json").read_text())
    for section, values in changes.items():
        config[section].update(values)
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="session")
def trained_autoencoder(cohort_dir, tmp_path_factory):
    """A tiny autoencoder trained for a few steps on the cohort."""
    from brainsynth.training import train_autoencoder

    output = tmp_path_factory.mktemp("runs") / "autoencoder"
    train_autoencoder(cohort_dir, "tiny", output, device="cpu", quiet=True)
    return output


@pytest.fixture(scope="session")
def trained_model(cohort_dir, trained_autoencoder, tmp_path_factory):
    """A tiny latent diffusion model trained for a few steps (a brainsynth model folder)."""
    from brainsynth.training import train_diffusion

    output = tmp_path_factory.mktemp("runs") / "model"
    return train_diffusion(cohort_dir, trained_autoencoder, "tiny", output, device="cpu", quiet=True)
