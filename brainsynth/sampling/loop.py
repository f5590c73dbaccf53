"""The denoising loop and the one progress, preview and cancellation contract of every face.

Notation (Ho et al. 2020; Song et al. 2021): ``x_t`` is the latent at timestep ``t``, ``eps`` the
U-Net's noise prediction, ``alpha_bar_t`` the cumulative product of ``1 - beta``, and
``x_0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)`` the predicted clean latent.

Callback contract: ``callback(progress)`` is called once per step, after the step, with a
:class:`StepProgress`. To cancel, the callback raises :class:`~brainsynth.errors.SamplingCancelled`;
the loop stops at once and nothing is returned or written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from brainsynth.devices import PRECISIONS
from brainsynth.errors import InvalidParameterError, SamplingCancelled
from brainsynth.sampling.solvers.base import Solver


@dataclass(frozen=True)
class StepProgress:
    """State of the sampler after one step.

    Attributes
    ----------
    step : int
        Steps done so far, 1 to ``total``.
    total : int
        Number of steps of this run.
    timestep : int
        Diffusion timestep ``t`` this step started from (``T - 1`` down to 0).
    latent : torch.Tensor
        Current latent ``x_{t-1}``, shape (B, C, X, Y, Z), on the sampling device. Read only.
    predicted_clean : torch.Tensor
        Predicted clean latent ``x_0`` at this step, same shape. Read only; decode it for a preview.
    """

    step: int
    total: int
    timestep: int
    latent: torch.Tensor
    predicted_clean: torch.Tensor


ProgressCallback = Callable[[StepProgress], None]


def renumbered(callback: ProgressCallback | None, offset: int, total: int) -> ProgressCallback | None:
    """A callback that reports a run's steps as steps ``offset + 1`` ... of ``total`` of a longer one
    (chunks of a batch, the inversion and regeneration of an edit)."""
    if callback is None:
        return None

    def shifted(progress: StepProgress) -> None:
        callback(
            StepProgress(
                step=offset + progress.step,
                total=total,
                timestep=progress.timestep,
                latent=progress.latent,
                predicted_clean=progress.predicted_clean,
            )
        )

    return shifted


def conditioning_inputs(
    covariates: torch.Tensor, latent_shape: Sequence[int], mode: str
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Turn a batch of normalised covariates into U-Net inputs.

    Parameters
    ----------
    covariates : torch.Tensor
        Shape (B, N), normalised.
    latent_shape : sequence of int
        (C, X, Y, Z) of one latent.
    mode : str
        ``"concat"``, ``"crossattn"`` or ``"concat+crossattn"``.

    Returns
    -------
    concat : torch.Tensor or None
        Shape (B, N, X, Y, Z): each covariate as a constant channel, to concatenate to ``x_t``.
    context : torch.Tensor or None
        Shape (B, 1, N): cross-attention context.
    """
    batch, count = covariates.shape
    concat = None
    if "concat" in mode:
        concat = covariates.reshape(batch, count, 1, 1, 1).expand(batch, count, *latent_shape[1:])
    context = covariates.reshape(batch, 1, count) if "crossattn" in mode else None
    return concat, context


def predict_clean(
    solver: Solver, model_output: torch.Tensor, x_t: torch.Tensor, timestep: int, prediction_type: str
) -> torch.Tensor:
    """Estimate ``x_0`` from the U-Net output at timestep ``t``."""
    alpha_bar = solver.alphas_cumprod[timestep].to(x_t.device, x_t.dtype)
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * model_output
    return (x_t - (1 - alpha_bar).sqrt() * model_output) / alpha_bar.sqrt()


def _solver_step(
    solver: Solver,
    model_output: torch.Tensor,
    timestep: int,
    x_t: torch.Tensor,
    *,
    eta: float,
    generators: Sequence[torch.Generator] | None,
) -> torch.Tensor:
    """One solver step. Stochastic steps run per item on the CPU with that item's generator, so an
    item's result does not depend on the batch it was sampled in nor on the device."""
    if generators is None:
        return solver.step(model_output, timestep, x_t, eta=eta)
    previous = [
        solver.step(model_output[i : i + 1].cpu(), timestep, x_t[i : i + 1].cpu(), eta=eta, generator=generator)
        for i, generator in enumerate(generators)
    ]
    return torch.cat(previous).to(x_t.device)


def autocast(device: torch.device, precision: str):
    """An autocast context for ``precision`` on ``device`` (a no-op for float32)."""
    dtype = PRECISIONS[precision]
    return (
        torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
        if dtype is not None
        else contextlib.nullcontext()
    )


@torch.no_grad()
def denoise(
    unet: torch.nn.Module,
    solver: Solver,
    x_T: torch.Tensor,  # noqa: N803 - named as in the papers
    covariates: torch.Tensor,
    *,
    conditioning: str,
    prediction_type: str = "epsilon",
    eta: float = 0.0,
    generators: Sequence[torch.Generator] | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "float32",
    guidance: float = 1.0,
    null_condition: float | None = None,
) -> torch.Tensor:
    """Run the reverse diffusion process from ``x_T`` to ``x_0``.

    Parameters
    ----------
    unet : torch.nn.Module
        Noise-prediction network ``eps(x_t, t, c)``.
    solver : Solver
        A solver of :func:`brainsynth.sampling.schedulers.make_scheduler`, with its inference timesteps set.
    x_T : torch.Tensor
        Initial noise, shape (B, C, X, Y, Z), on the sampling device.
    covariates : torch.Tensor
        Normalised covariates, shape (B, N), on the sampling device.
    conditioning : str
        How covariates reach the U-Net (see :func:`conditioning_inputs`).
    prediction_type : str
        ``"epsilon"`` or ``"v_prediction"``.
    eta : float
        DDIM stochasticity, 0 (deterministic) to 1.
    generators : sequence of torch.Generator, optional
        One CPU generator per batch item, for stochastic steps; ``None`` for deterministic ones.
    callback : callable, optional
        Called after each step with a :class:`StepProgress`; may raise
        :class:`~brainsynth.errors.SamplingCancelled`.
    precision : str
        ``"float32"``, or ``"bfloat16"``/``"float16"`` autocast for the U-Net (solver steps stay float32).
    guidance : float
        Classifier-free guidance scale ``w`` (Ho and Salimans 2022): the output used is
        ``out(c0) + w * (out(c) - out(c0))`` with ``c0`` every covariate set to ``null_condition``;
        1 is plain conditional sampling (one U-Net pass per step, the others two, in one batch).
    null_condition : float, optional
        The covariate value standing for "no conditioning" in training; needed when ``guidance != 1``.

    Returns
    -------
    torch.Tensor
        The denoised latent ``x_0``, shape (B, C, X, Y, Z).
    """
    guided = guidance != 1.0
    if guided and null_condition is None:
        raise InvalidParameterError(
            f"guidance must be 1 without a null_condition (a model trained without "
            f"conditioning dropout) (got {guidance!r})"
        )
    if guided:  # conditional and unconditional halves of one batch
        covariates = torch.cat((covariates, torch.full_like(covariates, float(null_condition))))
    concat, context = conditioning_inputs(covariates, x_T.shape[1:], conditioning)
    timesteps = [int(t) for t in solver.timesteps]
    x_t = x_T
    for step, t in enumerate(timesteps, start=1):
        x_in = torch.cat((x_t, x_t)) if guided else x_t
        net_input = x_in if concat is None else torch.cat((x_in, concat), dim=1)
        t_batch = torch.full((x_in.shape[0],), t, device=x_t.device, dtype=torch.long)
        with autocast(x_t.device, precision):
            model_output = unet(net_input, timesteps=t_batch, context=context).float()
        if guided:
            conditional, unconditional = model_output.chunk(2)
            model_output = unconditional + guidance * (conditional - unconditional)
        x_prev = _solver_step(solver, model_output, t, x_t, eta=eta, generators=generators)
        if callback is not None:
            x_0 = predict_clean(solver, model_output, x_t, t, prediction_type)
            callback(StepProgress(step=step, total=len(timesteps), timestep=t, latent=x_prev, predicted_clean=x_0))
        x_t = x_prev
    return x_t


__all__ = ["ProgressCallback", "SamplingCancelled", "StepProgress", "conditioning_inputs", "denoise"]
