"""Growing a trained autoencoder into one with more residual blocks per level, without changing what it computes.

A fine-tuning run may start from an autoencoder whose network settings differ from its configuration's only in
``num_res_blocks``, each level having at least as many blocks as before. The trained blocks keep their weights;
each added block (same channels in and out) starts with its last convolution at zero, so it passes its input
through unchanged and the grown autoencoder encodes and decodes exactly as the trained one did. Training then
gives the added blocks their work: with ``autoencoder.fine_tune: "decoder"`` only the decoder's, and every
latent, hence any diffusion model trained on them, stays as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.networks.nets.autoencoderkl import AEKLResBlock

from brainsynth.loading.networks import build_autoencoder


def blocks_per_level(network: Mapping[str, Any]) -> list[int]:
    """``num_res_blocks`` of autoencoder settings as one count per level."""
    counts = network["num_res_blocks"]
    return [int(counts)] * len(network["channels"]) if isinstance(counts, int) else [int(c) for c in counts]


def growth_problem(start: Mapping[str, Any], target: Mapping[str, Any]) -> str | None:
    """Why a network with settings ``start`` cannot be grown into ``target`` (None when it can).

    Identical settings grow trivially.
    """
    others = sorted(k for k in set(start) | set(target) if k != "num_res_blocks" and start.get(k) != target.get(k))
    if others:
        return f"its autoencoder settings differ from autoencoder.network in {', '.join(others)}"
    trained, wanted = blocks_per_level(start), blocks_per_level(target)
    if len(trained) != len(wanted):
        return "its num_res_blocks has another number of levels than autoencoder.network's"
    fewer = [f"level {i}: {new} < {old}" for i, (old, new) in enumerate(zip(trained, wanted, strict=True)) if new < old]
    if fewer:
        return (
            "autoencoder.network.num_res_blocks may add residual blocks to a trained autoencoder but not remove "
            f"them ({'; '.join(fewer)})"
        )
    return None


def _same_shapes(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    shapes_a = [(k, v.shape) for k, v in a.state_dict().items()]
    shapes_b = [(k, v.shape) for k, v in b.state_dict().items()]
    return type(a) is type(b) and shapes_a == shapes_b


def _copy_blocks(old: torch.nn.ModuleList, new: torch.nn.ModuleList) -> None:
    """Copy ``old``'s blocks into ``new``'s in order; the blocks ``new`` has in addition become identities."""
    j = 0
    for block in new:
        if j < len(old) and _same_shapes(old[j], block):
            block.load_state_dict(old[j].state_dict())
            j += 1
        elif isinstance(block, AEKLResBlock) and block.in_channels == block.out_channels:
            for parameter in block.conv2.parameters():
                torch.nn.init.zeros_(parameter)
        else:  # pragma: no cover - growth_problem admits only settings whose blocks line up
            raise ValueError(f"cannot line up block {type(block).__name__} with the trained network's")
    if j != len(old):  # pragma: no cover - as above
        raise ValueError("the trained network has blocks the grown one lacks")


def grow_autoencoder(start: torch.nn.Module, target: Mapping[str, Any]) -> torch.nn.Module:
    """The autoencoder of settings ``target``, computing what the trained ``start`` computes.

    Parameters
    ----------
    start : torch.nn.Module
        A trained :class:`~monai.networks.nets.AutoencoderKL`.
    target : mapping
        Its settings with ``num_res_blocks`` raised (checked with :func:`growth_problem` first).

    Returns
    -------
    torch.nn.Module
        A new float32 autoencoder in evaluation mode; ``start`` is left as it was.
    """
    grown = build_autoencoder(dict(target))
    trained = dict(start.named_children())
    for name, module in grown.named_children():
        if name in ("encoder", "decoder"):
            for part_name, part in module.named_children():
                old_part = getattr(trained[name], part_name)
                if isinstance(part, torch.nn.ModuleList):
                    _copy_blocks(old_part, part)
                else:
                    part.load_state_dict(old_part.state_dict())
        else:
            module.load_state_dict(trained[name].state_dict())
    return grown.float().eval()
