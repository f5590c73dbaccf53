"""Initial noise: drawn on the CPU from a seed, so a seed means the same brain on any device.

Notation: ``x_T`` is the initial latent, standard normal noise of the model's latent shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from brainsynth.errors import InvalidParameterError

#: Largest accepted seed (seeds are 64-bit generator states).
MAX_SEED = 2**63 - 1


def check_seed(seed: object, name: str = "seed") -> int:
    """Validate a seed and return it as an int.

    Raises
    ------
    InvalidParameterError
        If the seed is not an integer between 0 and :data:`MAX_SEED`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidParameterError(f"{name} must be an integer between 0 and 2**63-1 (got {seed!r})")
    if not 0 <= seed <= MAX_SEED:
        raise InvalidParameterError(f"{name} must be between 0 and 2**63-1 (got {seed})")
    return int(seed)


def draw_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """Draw one standard normal latent ``x_T`` from a seed, on the CPU, in float32.

    Parameters
    ----------
    seed : int
        Seed, 0 to 2**63-1.
    shape : sequence of int
        Latent shape, (C, X, Y, Z).

    Returns
    -------
    torch.Tensor
        Shape (C, X, Y, Z), float32, CPU.
    """
    generator = torch.Generator(device="cpu").manual_seed(check_seed(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical linear interpolation between two noise tensors.

    Gaussian noise in high dimension lies near a sphere; interpolating along it keeps every
    intermediate latent a plausible noise draw, where a straight line would shrink its norm.

    Parameters
    ----------
    a, b : torch.Tensor
        Tensors of equal shape.
    t : float
        Position, 0 gives ``a`` and 1 gives ``b``.
    """
    a_flat, b_flat = a.flatten().double(), b.flatten().double()
    cos_omega = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm())
    omega = torch.arccos(cos_omega.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:
        mixed = (1.0 - t) * a_flat + t * b_flat
    else:
        sin_omega = torch.sin(omega)
        mixed = (torch.sin((1.0 - t) * omega) / sin_omega) * a_flat + (torch.sin(t * omega) / sin_omega) * b_flat
    return mixed.reshape(a.shape).to(a.dtype)
