"""Initial noise: drawn on the CPU from a seed, so a seed means the same brain on any device.

Notation: ``x_T`` is the initial latent, standard normal noise of the model's latent shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class NoisePlan:
    """The initial latents of one call and how each was made, decided before any compute.

    Attributes
    ----------
    x_T : torch.Tensor
        (B, C, X, Y, Z) float32 on the CPU.
    seeds : tuple of int or None
        The seed of each item's noise (``None`` for explicit or interpolated noise).
    records : tuple of dict
        How each item's noise was made, as the result records it.
    step_seeds : tuple of int
        Seeds of each item's generator for stochastic steps (DDPM, or DDIM with eta above 0).
    """

    x_T: torch.Tensor  # noqa: N815 - the notation of the papers
    seeds: tuple[int | None, ...]
    records: tuple[dict[str, Any], ...]
    step_seeds: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.x_T.shape[0])

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], shape: Sequence[int]) -> NoisePlan:
        """One item per seed (already checked)."""
        x_T = torch.stack([draw_noise(s, shape) for s in seeds])  # noqa: N806
        return cls(x_T, tuple(seeds), tuple({"kind": "seed", "seed": s} for s in seeds), tuple(seeds))

    @classmethod
    def shared(cls, seed: int, count: int, shape: Sequence[int]) -> NoisePlan:
        """``count`` items of one seed's noise (a traversal)."""
        x_T = draw_noise(seed, shape).expand(count, *shape)  # noqa: N806
        return cls(x_T, (seed,) * count, tuple({"kind": "seed", "seed": seed} for _ in range(count)), (seed,) * count)

    @classmethod
    def explicit(cls, noise: torch.Tensor, shape: Sequence[int], seed: int) -> NoisePlan:
        """Given noise, of ``shape`` or a batch of it; ``seed`` seeds the stochastic steps of item 0."""
        x_T = check_noise(noise, shape)  # noqa: N806
        step_seeds = tuple(seed + i for i in range(x_T.shape[0]))
        records = tuple({"kind": "explicit", "index": i, "step_seed": s} for i, s in enumerate(step_seeds))
        return cls(x_T, (None,) * x_T.shape[0], records, step_seeds)

    @classmethod
    def spherical(cls, seed_a: int, seed_b: int, positions: Sequence[float], shape: Sequence[int]) -> NoisePlan:
        """Noise along the great circle from seed A's to seed B's, at ``positions`` in [0, 1]."""
        noise_a, noise_b = draw_noise(seed_a, shape), draw_noise(seed_b, shape)
        x_T = torch.stack([slerp(noise_a, noise_b, float(t)) for t in positions])  # noqa: N806
        records = tuple({"kind": "slerp", "seed_a": seed_a, "seed_b": seed_b, "t": float(t)} for t in positions)
        step_seeds = tuple(seed_a if t < 0.5 else seed_b for t in positions)
        return cls(x_T, (None,) * len(positions), records, step_seeds)

    def generators(self, start: int, stop: int, shape: Sequence[int]) -> list[torch.Generator]:
        """The step generators of items ``start`` to ``stop``, advanced past the draw of ``x_T`` (as if one
        stream of each seed served both)."""
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in self.step_seeds[start:stop]]
        for generator in generators:
            torch.randn(tuple(shape), generator=generator)
        return generators


def check_noise(noise: object, shape: Sequence[int]) -> torch.Tensor:
    """Explicit noise as a (B, C, X, Y, Z) float32 CPU batch, or an error naming what is wrong."""
    if not isinstance(noise, torch.Tensor):
        raise InvalidParameterError(f"noise must be a torch.Tensor (got {type(noise).__name__})")
    shape = tuple(shape)
    batch = noise[None] if tuple(noise.shape) == shape else noise
    if tuple(batch.shape[1:]) != shape or batch.ndim != 5 or batch.shape[0] < 1:
        raise InvalidParameterError(
            f"noise must have shape {shape} or (B, {', '.join(map(str, shape))}) (got {tuple(noise.shape)})"
        )
    if not torch.isfinite(batch).all():
        raise InvalidParameterError("noise must be finite (it holds NaN or infinite values)")
    return batch.detach().to("cpu", torch.float32)
