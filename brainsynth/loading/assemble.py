"""The one way a model is put together: a configuration, its two networks, and their weight files.

Model folders and MONAI bundles differ only in where the configuration and the weight files come from
and how each file is checked; both then call :func:`assemble_model`, which builds the configured
networks, loads each checked file into its network (MONAI GenerativeModels' weights converted), and
records where the model came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from brainsynth.config import ModelConfig
from brainsynth.loading.networks import build_autoencoder, build_unet, load_weights
from brainsynth.loading.weights import read_state_dict
from brainsynth.model import LatentDiffusionModel

#: The networks of a model, in the order their files are checked and loaded.
NETWORKS = ("autoencoder", "unet")


def build_networks(config: ModelConfig) -> dict[str, torch.nn.Module]:
    """The configured autoencoder and U-Net, with freshly initialised weights."""
    return {"autoencoder": build_autoencoder(config.autoencoder), "unet": build_unet(config.unet)}


def assemble_model(
    config: ModelConfig,
    weight_files: Mapping[str, Path],
    weight_hashes: Mapping[str, Mapping[str, str]],
    *,
    source: str,
) -> LatentDiffusionModel:
    """Build ``config``'s networks and load their weights.

    Parameters
    ----------
    config : ModelConfig
        The checked model configuration.
    weight_files : mapping
        ``"autoencoder"`` and ``"unet"`` to a weight file each, already checked against its hash.
    weight_hashes : mapping
        The same names to the file's record (``{"file": ..., "sha256" or "md5": ...}``), for provenance.
    source : str
        Where the model was loaded from.

    Raises
    ------
    ModelLoadError
        For weights that do not fit the configured networks.
    """
    networks = build_networks(config)
    for name in NETWORKS:
        load_weights(networks[name], read_state_dict(weight_files[name]), what=name)
    return LatentDiffusionModel(
        config, networks["autoencoder"], networks["unet"], source=source, weight_hashes=weight_hashes
    )
