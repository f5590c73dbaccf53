"""Building MONAI's autoencoder and U-Net from a configuration and loading their weights.

Weights saved by MONAI GenerativeModels (the published bundle's format) are recognised by their keys
and converted with the networks' own ``load_old_state_dict``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from typing import Any

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

from brainsynth.errors import ModelLoadError
from brainsynth.files.schema import Checks, shown
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


def network_setting_problems(settings: Mapping[str, Any], section: str) -> list[str]:
    """What is wrong with network settings that should be plain numbers, booleans and lists of them.

    MONAI's network settings are such values; a string there would reach a bundle that MONAI's
    ``ConfigParser`` reads (and evaluates when it starts with ``$``), so none is accepted.
    """
    problems = []

    def check(value: Any, where: str) -> None:
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                check(item, f"{where}[{i}]")
        elif not (value is None or isinstance(value, bool | int | float)):
            problems.append(f"{where} must be a number, a boolean or a list of them (got {str(value)[:60]!r})")

    for name, value in settings.items():
        check(value, f"{section}.{name}")
    if problems:
        return problems
    checks = Checks()
    for name, value in settings.items():
        where = f"{section}.{name}"
        if name == "spatial_dims":
            checks.integer(value, where, 3, 3)
        elif name in POSITIVE_INTEGER_SETTINGS or name in COUNT_SETTINGS:
            low = 1 if name in POSITIVE_INTEGER_SETTINGS else 0
            for i, item in enumerate(value) if isinstance(value, list | tuple) else [(None, value)]:
                if item is not None or name not in OPTIONAL_SETTINGS:
                    checks.integer(item, where if i is None else f"{where}[{i}]", low, MAX_CHANNELS)
        elif name in BOOLEAN_SETTINGS:
            for i, item in enumerate(value) if isinstance(value, list | tuple) else [(None, value)]:
                if not isinstance(item, bool):
                    checks.add(f"{where if i is None else f'{where}[{i}]'} must be true or false (got {shown(item)})")
        elif name == "norm_eps":
            checks.number(value, where, 0.0, 1.0, above=True)
        elif name == "dropout_cattn":
            checks.number(value, where, 0.0, 1.0)
    return checks.problems


#: Network settings that are positive integers (or lists of them), counts that may be 0, those that may
#: be null, and those that are booleans (or lists of them), as MONAI's networks take them.
POSITIVE_INTEGER_SETTINGS = frozenset(
    {
        "in_channels",
        "out_channels",
        "latent_channels",
        "channels",
        "num_res_blocks",
        "norm_num_groups",
        "transformer_num_layers",
        "cross_attention_dim",
        "num_class_embeds",
    }
)
COUNT_SETTINGS = frozenset({"num_head_channels"})
OPTIONAL_SETTINGS = frozenset({"cross_attention_dim", "num_class_embeds"})
BOOLEAN_SETTINGS = frozenset(
    {
        "attention_levels",
        "with_conditioning",
        "resblock_updown",
        "upcast_attention",
        "with_encoder_nonlocal_attn",
        "with_decoder_nonlocal_attn",
        "use_checkpoint",
        "use_convtranspose",
        "use_flash_attention",
        "include_fc",
        "use_combined_linear",
    }
)
#: Largest number of channels (or heads, layers, blocks) a network setting may give.
MAX_CHANNELS = 65536
