"""Tiny model configurations and builders shared by the tests (channels 8, 16^3 volumes)."""

from __future__ import annotations

import torch

from brainsynth.config import ModelConfig, NoiseSchedule
from brainsynth.loading.networks import build_autoencoder, build_unet
from brainsynth.loading.presets import UKB_COVARIATES
from brainsynth.model import LatentDiffusionModel

TINY_AUTOENCODER = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 1,
    "latent_channels": 3,
    "channels": [8, 8],
    "num_res_blocks": 1,
    "norm_num_groups": 4,
    "norm_eps": 1e-6,
    "attention_levels": [False, False],
    "with_encoder_nonlocal_attn": False,
    "with_decoder_nonlocal_attn": False,
}

TINY_UNET = {
    "spatial_dims": 3,
    "in_channels": 7,
    "out_channels": 3,
    "channels": [8, 16],
    "num_res_blocks": 1,
    "attention_levels": [False, True],
    "norm_num_groups": 4,
    "norm_eps": 1e-6,
    "resblock_updown": True,
    "num_head_channels": [0, 8],
    "with_conditioning": True,
    "transformer_num_layers": 1,
    "cross_attention_dim": 4,
    "upcast_attention": True,
}


def tiny_config(**overrides) -> ModelConfig:
    fields = {
        "name": "tiny",
        "description": "Tiny random model for tests.",
        "autoencoder": dict(TINY_AUTOENCODER),
        "unet": dict(TINY_UNET),
        "noise_schedule": NoiseSchedule(),
        "latent_shape": (3, 8, 8, 8),
        "image_shape": (16, 16, 16),
        "affine": ((-2.0, 0, 0, 15.0), (0, 2.0, 0, -15.0), (0, 0, 2.0, -15.0), (0, 0, 0, 1.0)),
        "covariates": UKB_COVARIATES,
        "default_steps": 5,
    }
    fields.update(overrides)
    return ModelConfig(**fields)


def tiny_model(seed: int = 0, **overrides) -> LatentDiffusionModel:
    """A tiny model with random weights drawn from ``seed``; the U-Net's output layer is re-initialised
    away from zero so that conditioning and noise visibly change the result."""
    torch.manual_seed(seed)
    config = tiny_config(**overrides)
    unet = build_unet(config.unet)
    for name, parameter in unet.named_parameters():
        if name.startswith("out."):
            torch.nn.init.normal_(parameter, std=0.05)
    return LatentDiffusionModel(config, build_autoencoder(config.autoencoder), unet, source="tests")
