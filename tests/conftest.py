"""Shared fixtures: tiny random models as Python objects, brainsynth model folders and MONAI bundles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")  # figures in tests never open windows, Xvfb or not

from brainsynth.loading.model_dir import save_model_dir
from tests.bundles import BUNDLE_LAYOUTS, write_layout
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


@pytest.fixture
def block_import(monkeypatch):
    """``block_import("psutil", ...)``: importing those modules fails, as where they are not installed."""
    import builtins

    real_import = builtins.__import__

    def block(*names: str) -> None:
        def guarded(name, *args, **kwargs):
            if name in names:
                raise ImportError(f"No module named {name!r}")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", guarded)

    return block


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
    """A MONAI bundle folder in the model-zoo layout with old-format tiny weights and an md5 list."""
    return write_layout(tmp_path / "bundle", "model-zoo", *old_networks)


@pytest.fixture(params=BUNDLE_LAYOUTS)
def layout_bundle(request, tmp_path, old_networks):
    """A bundle folder in each public layout of the published bundle, with old-format tiny weights."""
    return write_layout(tmp_path / f"bundle-{request.param}", request.param, *old_networks)


@pytest.fixture(scope="session")
def cohort_dir(tmp_path_factory):
    """A small synthetic cohort on the 8 mm grid the ``tiny`` training preset uses."""
    from brainsynth.synthetic.cohort import generate_cohort

    return generate_cohort(6, tmp_path_factory.mktemp("cohort") / "cohort", spacing=8.0, seed=3)


def write_training_config(path: Path, **changes) -> Path:
    """The ``tiny`` preset with changes per section, e.g. ``autoencoder={"steps": 40}``."""
    from brainsynth.training.settings import PRESETS_DIR

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
