"""Building MONAI's autoencoder and U-Net from a configuration and loading their weights.

Weights saved by MONAI GenerativeModels (the published bundle's format) are recognised by their keys
and converted with the networks' own ``load_old_state_dict``.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

from brainsynth.errors import ModelLoadError
from brainsynth.loading.weights import StateDict


def _build(network_class: type[torch.nn.Module], settings: dict[str, Any], what: str) -> torch.nn.Module:
    try:
        return network_class(**settings)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{what} settings are not valid for MONAI {network_class.__name__}: {exc}") from exc


def build_autoencoder(settings: dict[str, Any]) -> AutoencoderKL:
    """Build an :class:`~monai.networks.nets.AutoencoderKL` from its keyword arguments.

    Raises
    ------
    ModelLoadError
        If MONAI rejects the settings.
    """
    return _build(AutoencoderKL, settings, "autoencoder")


def build_unet(settings: dict[str, Any]) -> DiffusionModelUNet:
    """Build a :class:`~monai.networks.nets.DiffusionModelUNet` from its keyword arguments.

    Raises
    ------
    ModelLoadError
        If MONAI rejects the settings.
    """
    return _build(DiffusionModelUNet, settings, "U-Net")


def is_old_format(network: torch.nn.Module, state_dict: StateDict) -> bool:
    """Whether ``state_dict`` uses MONAI GenerativeModels key names rather than ``network``'s own."""
    return set(state_dict) != set(network.state_dict())


def load_weights(network: torch.nn.Module, state_dict: StateDict, *, what: str) -> bool:
    """Load weights into a network, converting the GenerativeModels key format when needed.

    Parameters
    ----------
    network : torch.nn.Module
        An autoencoder or U-Net built from the model's configuration.
    state_dict : dict
        The weights, in current MONAI or in GenerativeModels format.
    what : str
        Name of the network for error messages (``"autoencoder"``).

    Returns
    -------
    bool
        True when the weights were converted from the old format.

    Raises
    ------
    ModelLoadError
        If the weights do not fit the network (other settings, other shapes).
    """
    expected = network.state_dict()
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point() and key.rsplit(".", 1)[-1] in ("weight", "bias"):
            raise ModelLoadError(f"{what} weights are not numbers of a floating-point type: {key} is {tensor.dtype}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelLoadError(
                f"{what} weights hold NaN or infinite values (first in {key}); the file is damaged "
                "or was saved from a run that diverged"
            )
    converted = is_old_format(network, state_dict)
    try:
        if converted:
            # load_old_state_dict prints diagnostics; keep them off the user's terminal.
            with contextlib.redirect_stdout(io.StringIO()):
                network.load_old_state_dict(dict(state_dict))  # type: ignore[operator]
        else:
            mismatched = [k for k, v in state_dict.items() if v.shape != expected[k].shape]
            if mismatched:
                k = mismatched[0]
                raise ModelLoadError(
                    f"{what} weights do not fit the configured network: {len(mismatched)} tensors differ in "
                    f"shape, e.g. {k} is {tuple(state_dict[k].shape)} in the file and "
                    f"{tuple(expected[k].shape)} in the network; check the network settings"
                )
            network.load_state_dict(state_dict)
    except (KeyError, RuntimeError) as exc:
        missing = sorted(set(expected) - set(state_dict))[:3]
        raise ModelLoadError(
            f"{what} weights do not fit the configured network ({type(exc).__name__}: {str(exc)[:300]}); "
            f"first keys the network expects but the file lacks: {missing}"
        ) from exc
    return converted
