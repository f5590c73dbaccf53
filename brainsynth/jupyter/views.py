"""Teaching views: slices, traversals with measured volumes, interpolations, animations, denoising.

Every view returns a matplotlib figure (or an IPython image for animations) and uses only the
public sampling API and its step callback.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from brainsynth.errors import BrainsynthError
from brainsynth.model import LatentDiffusionModel
from brainsynth.result import SampleResult
from brainsynth.sampling.loop import StepProgress

VIEWS = ("sagittal", "coronal", "axial")


def _slice(volume: np.ndarray, view: str, position: int | None = None) -> np.ndarray:
    axis = VIEWS.index(view)
    index = volume.shape[axis] // 2 if position is None else position
    return np.rot90(np.take(volume, index, axis=axis))


def orthogonal_slices(volume: np.ndarray, positions: Sequence[int] | None = None, *, title: str = "") -> plt.Figure:
    """Sagittal, coronal and axial slices of a (X, Y, Z) volume in RAS-like voxel order."""
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for axis, view, position in zip(axes, VIEWS, positions or (None,) * 3, strict=True):
        axis.imshow(_slice(volume, view, position), cmap="gray", vmin=0, vmax=1)
        axis.set_title(view, fontsize=9)
        axis.axis("off")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def measured_volumes(volume: np.ndarray, affine: np.ndarray) -> Any | None:
    """The volumes measured in ``volume``, or ``None`` with a warning saying why they could not be."""
    try:
        from brainsynth.evaluation.volumetry import measure_volumes
    except ImportError as exc:
        raise BrainsynthError(
            f"measuring volumes needs scipy and nilearn: pip install 'brainsynth[notebook]' ({exc}); "
            "or pass measure=False"
        ) from exc
    try:
        return measure_volumes(volume, affine)
    except BrainsynthError as exc:  # an image the segmentation cannot read (say, no brain in it)
        warnings.warn(f"volumes not measured: {exc}", stacklevel=3)
        return None


def show_result_grid(
    result: SampleResult, labels: Sequence[str], *, measure: bool = True, views: Sequence[str] = ("axial", "coronal")
) -> plt.Figure:
    """A grid: one column per item of a result, one row per view, labels (and measured volumes) below."""
    count = len(result)
    figure, axes = plt.subplots(len(views), count, figsize=(1.9 * count, 2.1 * len(views) + 0.6), squeeze=False)
    for column in range(count):
        volume = result.volumes[column]
        for row, view in enumerate(views):
            axes[row, column].imshow(_slice(volume, view), cmap="gray", vmin=0, vmax=1)
            axes[row, column].axis("off")
        text = labels[column]
        measured = measured_volumes(volume, result.affine) if measure else None
        if measured is not None:
            text += f"\nventricles {measured.ventricular_volume_ml:.0f} ml\nbrain {measured.brain_volume_ml:.0f} ml"
        axes[-1, column].set_title(text, fontsize=7, y=-0.45)
    figure.tight_layout()
    return figure


def show_traversal(
    model: LatentDiffusionModel,
    covariate: str,
    values: Sequence[float],
    *,
    seed: int = 0,
    measure: bool = True,
    **options: Any,
) -> plt.Figure:
    """Slices across a covariate sweep (same noise), with the volumes measured in each frame.

    Parameters
    ----------
    model : LatentDiffusionModel
        The model.
    covariate : str
        Covariate to sweep; ``values`` are in its real units.
    seed : int
        Seed of the shared noise.
    measure : bool
        Measure ventricular and brain volume under each frame (MNI-space models).
    **options
        Other covariates and sampling settings for :meth:`LatentDiffusionModel.traverse`.
    """
    result = model.traverse(covariate, list(values), seed=seed, **options)
    unit = model.config.covariate(covariate).unit
    labels = [f"{covariate}\n{v:g} {unit}" if isinstance(v, int | float) else f"{covariate}\n{v}" for v in values]
    return show_result_grid(result, labels, measure=measure)


def show_interpolation(
    model: LatentDiffusionModel, seed_a: int, seed_b: int, frames: int = 6, *, measure: bool = False, **options: Any
) -> plt.Figure:
    """Slices along a spherical interpolation from seed A's noise to seed B's."""
    result = model.interpolate(seed_a, seed_b, frames, **options)
    return show_result_grid(result, [f"t = {n['t']:.2f}" for n in result.noise], measure=measure)


def animate(result: SampleResult, *, view: str = "axial", fps: int = 4, labels: Sequence[str] | None = None):
    """An animated GIF of a result's items (a sweep or an interpolation), shown inline in notebooks."""
    import imageio.v2 as imageio
    from IPython.display import Image

    frames = []
    for index in range(len(result)):
        figure, axis = plt.subplots(figsize=(3, 3.3))
        axis.imshow(_slice(result.volumes[index], view), cmap="gray", vmin=0, vmax=1)
        axis.set_title(labels[index] if labels else f"frame {index}", fontsize=9)
        axis.axis("off")
        figure.canvas.draw()
        frames.append(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy())
        plt.close(figure)
    buffer = io.BytesIO()
    imageio.mimsave(buffer, frames, format="GIF", duration=1.0 / fps, loop=0)
    return Image(data=buffer.getvalue(), format="gif")


def record_denoising(model: LatentDiffusionModel, steps_to_show: Sequence[int], **sampling: Any):
    """Sample once and keep, at the chosen steps, the current latent ``x_t`` and the predicted clean latent.

    Returns
    -------
    result : SampleResult
    snapshots : list of (step, x_t, predicted x_0) with latents as CPU tensors.
    """
    wanted = set(steps_to_show)
    snapshots: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def keep(progress: StepProgress) -> None:
        if progress.step in wanted:
            snapshots.append((progress.step, progress.latent[:1].cpu(), progress.predicted_clean[:1].cpu()))

    result = model.sample(callback=keep, **sampling)
    return result, snapshots


def show_denoising(
    model: LatentDiffusionModel,
    steps_to_show: Sequence[int] | None = None,
    *,
    seed: int = 0,
    view: str = "axial",
    **sampling: Any,
) -> plt.Figure:
    """How noise becomes a brain: at chosen steps, the latent (channel 0), the predicted clean latent
    and the brain decoded from it."""
    total = sampling.get("steps") or model.config.default_steps
    chosen = list(steps_to_show or sorted({1, max(1, total // 4), max(1, total // 2), max(1, 3 * total // 4), total}))
    _, snapshots = record_denoising(model, chosen, seed=seed, **sampling)
    figure, axes = plt.subplots(3, len(snapshots), figsize=(2.0 * len(snapshots), 6.4), squeeze=False)
    device = next(model.autoencoder.parameters()).device
    for column, (step, latent, clean) in enumerate(snapshots):
        decoded = model.decode(clean.to(device))[0]
        rows = [(latent[0, 0].numpy(), "latent x_t"), (clean[0, 0].numpy(), "predicted x_0"), (decoded, "decoded x_0")]
        for row, (image, name) in enumerate(rows):
            limits = (0, 1) if row == 2 else (float(image.min()), float(image.max()))
            axes[row, column].imshow(_slice(image, view), cmap="gray", vmin=limits[0], vmax=limits[1])
            axes[row, column].axis("off")
            if column == 0:
                axes[row, column].set_title(name, fontsize=8, loc="left")
        axes[0, column].set_title(f"step {step}/{total}" + ("" if column else "\nlatent x_t"), fontsize=8)
    figure.tight_layout()
    return figure


def forward_noised(
    model: LatentDiffusionModel, image: np.ndarray, timesteps: Sequence[int], *, seed: int = 0
) -> list[tuple[int, float, torch.Tensor, np.ndarray]]:
    """``image`` encoded and noised to each timestep: (t, alpha_bar_t, x_t, x_t decoded) for each."""
    from brainsynth.sampling.schedulers import training_noise

    scheduler = training_noise(model.config.noise_schedule)
    device = next(model.autoencoder.parameters()).device
    with torch.no_grad():
        z_mu, _ = model.autoencoder.encode(torch.as_tensor(image, dtype=torch.float32)[None, None].to(device))
    z = z_mu.cpu() * model.config.scale_factor
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    noised = []
    for t in timesteps:
        x_t = scheduler.add_noise(z, eps, torch.tensor([t]))
        noised.append((int(t), float(scheduler.alphas_cumprod[t]), x_t, model.decode(x_t.to(device))[0]))
    return noised


def show_forward_process(
    model: LatentDiffusionModel,
    image: np.ndarray,
    timesteps: Sequence[int] = (0, 100, 300, 600, 999),
    *,
    seed: int = 0,
    view: str = "axial",
) -> plt.Figure:
    """The forward (noising) process: encode an image, add noise at timesteps ``t``, decode.

    ``x_t = sqrt(alpha_bar_t) z + sqrt(1 - alpha_bar_t) eps``, with ``z`` the scaled latent of ``image``.
    """
    figure, axes = plt.subplots(2, len(timesteps), figsize=(2.0 * len(timesteps), 4.4), squeeze=False)
    for column, (t, alpha_bar, x_t, decoded) in enumerate(forward_noised(model, image, timesteps, seed=seed)):
        axes[0, column].imshow(_slice(x_t[0, 0].numpy(), view), cmap="gray")
        axes[1, column].imshow(_slice(decoded, view), cmap="gray", vmin=0, vmax=1)
        axes[0, column].set_title(
            f"t = {t}\nsignal {alpha_bar**0.5:.2f}, noise {(1 - alpha_bar) ** 0.5:.2f}", fontsize=8
        )
        for row in range(2):
            axes[row, column].axis("off")
    axes[0, 0].text(-0.1, 0.5, "latent", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right")
    axes[1, 0].text(-0.1, 0.5, "decoded", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right")
    figure.tight_layout()
    return figure
