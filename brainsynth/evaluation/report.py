"""``brainsynth evaluate``: the paper's kinds of evidence for any model, as a markdown report with figures.

- Reconstruction: the autoencoder on held-out images (PSNR, SSIM).
- Diversity: mean MS-SSIM and mean 4-G-R-SSIM (:mod:`brainsynth.evaluation.gradient_ssim`) over pairs of
  samples, beside the same for pairs of real images. FID is not computed: its Med3D features need
  pretrained weights that are not downloaded.
- Conditioning fidelity: ask for a spread of volumes, measure them in the samples with a segmentation
  that does not use the model, and report Pearson r and the mean absolute error in ml. Two designs:

  ``"cohort"`` (default)
      every sample asks for the covariates of one held-out real subject (the data's own spread and
      combinations of covariates); besides the error against the requested value, the error against
      the same segmenter's measurement of that subject's real image is reported, which cancels the
      segmenter's own bias.
  ``"sweep"``
      one covariate at a time, evenly spread over the held-out subjects' range, the other covariates
      at the model's defaults: how far the covariate alone steers the image.
- Denoising by noise level: how well the U-Net recovers held-out real latents from each amount of
  noise (:mod:`brainsynth.evaluation.denoising`), which shows where a weak model goes wrong.
- Speed: median seconds per sample with the model's default settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsynth.devices import resolve_device
from brainsynth.errors import InvalidParameterError, OutputExistsError
from brainsynth.evaluation.denoising import denoising_errors
from brainsynth.evaluation.gradient_ssim import mean_pairwise_gradient_ssim
from brainsynth.evaluation.metrics import mean_pairwise_ms_ssim, psnr, ssim
from brainsynth.evaluation.results import EvaluationReport, Fidelity, write_report
from brainsynth.evaluation.segmenters import MEASURABLE, field_of, load_segmenter
from brainsynth.files.paths import check_output_name
from brainsynth.model import LatentDiffusionModel
from brainsynth.progress import WorkCallback, item_steps, report
from brainsynth.sampling.loop import StepProgress
from brainsynth.sampling.noise import check_seed
from brainsynth.sampling.settings import check_guidance

#: Ways of choosing the requested covariates of the fidelity measurement.
FIDELITY_DESIGNS = ("cohort", "sweep")


def fidelity_covariates(model: LatentDiffusionModel, covariates: list[str] | None) -> list[str]:
    """The covariates whose fidelity is measured: those asked for, or the model's that the segmenter measures."""
    return [c for c in MEASURABLE if c in model.config.covariate_names] if covariates is None else list(covariates)


def check_request(model: LatentDiffusionModel, n: int, covariates: list[str] | None, fidelity: str = "cohort") -> None:
    """Refuse nonsensical evaluation requests before any compute."""
    covariates = fidelity_covariates(model, covariates)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InvalidParameterError(f"n must be an integer of at least 2 (pairs are compared; got {n!r})")
    if fidelity not in FIDELITY_DESIGNS:
        raise InvalidParameterError(f"fidelity must be one of {', '.join(FIDELITY_DESIGNS)} (got {fidelity!r})")
    for name in covariates:
        model.config.covariate(name)  # raises for unknown names
        if name not in MEASURABLE:
            raise InvalidParameterError(
                f"covariate {name!r} cannot be measured in an image; fidelity covariates are {', '.join(MEASURABLE)}"
            )


def _real_images(model: LatentDiffusionModel, data: str | Path | None, n: int, seed: int, workdir: Path):
    """Held-out real images on the model's grid, with their participants rows (a fresh synthetic cohort
    when no data folder is given)."""
    from brainsynth.bids import DataSettings, TrainingImages

    config = model.config
    spacing = config.voxel_size[0]
    if data is None:
        from brainsynth.synthetic.cohort import generate_cohort

        data = generate_cohort(n, workdir / "held_out_cohort", spacing=spacing, seed=10_000 + seed, overwrite=True)
    settings = DataSettings(spacing=spacing, shape=tuple(config.image_shape), covariates="ukb")
    images = TrainingImages(data, settings)
    count = min(n, len(images))
    return Path(data), images, count


def evaluate_model(
    model: LatentDiffusionModel,
    output: str | Path,
    *,
    n: int = 16,
    data: str | Path | None = None,
    covariates: list[str] | None = None,
    fidelity: str = "cohort",
    segmenter: str | None = None,
    seed: int = 0,
    device: str = "auto",
    guidance: float | None = None,
    overwrite: bool = False,
    callback: WorkCallback | None = None,
) -> EvaluationReport:
    """Evaluate a model and write ``report.md``, ``report.json`` and figures into ``output``.

    Parameters
    ----------
    model : LatentDiffusionModel
        The model to evaluate.
    output : str or Path
        Report folder (created; its parent must exist).
    n : int
        Samples per measurement and real images compared, at least 2.
    data : str or Path, optional
        BIDS-like folder of real images not used in training; by default a fresh synthetic cohort.
    covariates : list of str, optional
        Covariates whose fidelity is measured (default: those of the model the segmenter measures).
    fidelity : {"cohort", "sweep"}
        How the requested values are chosen (see the module's description): the held-out subjects'
        covariates, or one covariate swept over their range with the others at the defaults.
    segmenter : str, optional
        ``"package.module:function"`` measuring volumes (default: :mod:`brainsynth.evaluation.volumetry`).
    seed : int
        Seed of the held-out cohort and of the samples.
    device : str
        Sampling device.
    guidance : float, optional
        Classifier-free guidance scale of the samples (default: the model's).
    overwrite : bool
        Replace an existing report folder's files.
    callback : callable, optional
        Called with a :class:`~brainsynth.progress.WorkProgress` (``unit="stage"``, the stage's name
        as ``message``) before each stage and after each denoising step of its samples; raise
        :class:`~brainsynth.errors.SamplingCancelled` in it to stop (no report is written then).
    """
    covariates = fidelity_covariates(model, covariates)
    check_request(model, n, covariates, fidelity)
    guidance = check_guidance(model.config, guidance)
    measure = load_segmenter(segmenter)
    resolve_device(device)  # an unknown or missing device fails here, before the held-out cohort is made
    check_seed(seed, "seed")
    output = check_output_name(output, "output")
    if output.exists() and not output.is_dir():
        raise InvalidParameterError(f"output {str(output)!r} is a file; give a folder for the report")
    if (output / "report.md").exists() and not overwrite:
        raise OutputExistsError(f"{output / 'report.md'} exists; pass overwrite=True (--overwrite) to replace it")
    output.mkdir(exist_ok=True)
    stages = _Stages(callback, fidelity, covariates)
    say = stages.start

    say("reading held-out images")
    data_path, images, count = _real_images(model, data, n, seed, output)
    real = [images.images(torch.tensor([i]))[0, 0].numpy() for i in range(count)]
    say("reconstruction")
    recon_psnr, recon_ssim, reconstructions = _reconstruction(model, real, device)
    say("denoising by noise level")
    denoising = denoising_errors(
        model, images.images(torch.arange(count)), images.covariates[:count], device=resolve_device(device), seed=seed
    )
    say("diversity")
    samples, seconds = _diverse_samples(model, images, n, seed, device, guidance, stages.steps())
    report = EvaluationReport(
        model=model.name,
        n=n,
        real_images=str(data_path),
        reconstruction_psnr_db=recon_psnr,
        reconstruction_ssim=recon_ssim,
        samples_ms_ssim=mean_pairwise_ms_ssim(samples),
        real_ms_ssim=mean_pairwise_ms_ssim(real),
        samples_gradient_ssim=mean_pairwise_gradient_ssim(samples),
        real_gradient_ssim=mean_pairwise_gradient_ssim(real),
        fidelity_design=fidelity,
        seconds_per_sample=seconds,
        denoising=denoising,
        settings={
            "steps": model.config.default_steps,
            "scheduler": model.config.default_scheduler,
            "guidance": guidance,
            "device": device,
            "seed": seed,
            "segmenter": segmenter or "brainsynth.evaluation.volumetry",
        },
    )
    say("measuring the real images")
    recorded = {name: _recorded(images, model, name, n) for name in covariates}
    real_measured = [measure(volume, model.config.affine_array) for volume in real]
    for name in covariates:
        on_real = [field_of(m, MEASURABLE[name]) for m in real_measured]
        report.segmenter_agreement[name] = float(np.corrcoef(recorded[name][: len(real)], on_real)[0, 1])
    if fidelity == "cohort":
        say("measuring the samples")
        sample_measured = [measure(volume, model.config.affine_array) for volume in samples]
    for name in covariates:
        say(f"fidelity of {name}")
        if fidelity == "cohort":
            real_values = [field_of(real_measured[i % len(real)], MEASURABLE[name]) for i in range(n)]
            report.fidelity.append(_fidelity_of(name, recorded[name], sample_measured, real_values))
        else:
            report.fidelity.append(
                _swept_fidelity(model, name, recorded[name], n, seed, device, measure, guidance, stages.steps())
            )
    say("writing the report")
    write_report(report, output, model, real, reconstructions, samples)
    return report


class _Stages:
    """The stages of one evaluation, reported to a callback of long work as they start."""

    def __init__(self, callback: WorkCallback | None, fidelity: str, covariates: list[str]) -> None:
        self.callback = callback
        self.names = [
            "reading held-out images",
            "reconstruction",
            "denoising by noise level",
            "diversity",
            "measuring the real images",
            *(["measuring the samples"] if fidelity == "cohort" else []),
            *(f"fidelity of {name}" for name in covariates),
            "writing the report",
        ]
        self.current = self.names[0]

    def start(self, name: str) -> None:
        self.current = name
        report(self.callback, self.names.index(name), len(self.names), "stage", name)

    def steps(self) -> Callable[[StepProgress], None] | None:
        return item_steps(self.callback, self.names.index(self.current), len(self.names), "stage", self.current)


def _reconstruction(model: LatentDiffusionModel, real: list[np.ndarray], device: str):
    target = resolve_device(device)
    autoencoder = model.autoencoder.to(target).eval()
    values, reconstructions = [], []
    with torch.no_grad():
        for image in real:
            z_mu, _ = autoencoder.encode(torch.as_tensor(image)[None, None].to(target))
            reconstruction = autoencoder.decode(z_mu)[0, 0].float().cpu().numpy()
            reconstructions.append(reconstruction)
            values.append((psnr(image, np.clip(reconstruction, 0, 1)), ssim(image, np.clip(reconstruction, 0, 1))))
    return float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values])), reconstructions


def _diverse_samples(model: LatentDiffusionModel, images, n: int, seed: int, device: str, guidance: float, callback):
    """n samples with the covariates of real subjects (cycled), one per seed; median seconds per sample."""
    specs = model.config.covariates
    samples, seconds = [], []
    for i in range(n):
        normalised = images.covariates[i % len(images)].tolist()
        values = {
            s.name: (s.choices[round(v)] if s.categorical else s.denormalise(v))
            for s, v in zip(specs, normalised, strict=True)
        }
        started = time.perf_counter()
        sample = model.sample(
            values, seed=seed + i, device=device, guidance=guidance, extrapolate=True, callback=callback
        )
        samples.append(sample.volume)
        seconds.append(time.perf_counter() - started)
    return samples, float(np.median(seconds))


def _recorded(images, model: LatentDiffusionModel, name: str, n: int) -> list[float]:
    """The recorded value of covariate ``name`` for the n requests made from held-out subjects (cycled)."""
    index = model.config.covariate_names.index(name)
    spec = model.config.covariates[index]
    return [spec.denormalise(float(images.covariates[i % len(images), index])) for i in range(n)]


def _fidelity_of(name: str, requested: list[float], measured: list[Any], real: list[float] | None = None) -> Fidelity:
    values = [field_of(m, MEASURABLE[name]) for m in measured]
    errors = np.abs(np.asarray(requested) - np.asarray(values))
    result = Fidelity(
        covariate=name,
        requested=list(requested),
        measured=values,
        pearson_r=float(np.corrcoef(requested, values)[0, 1]),
        mean_absolute_error=float(errors.mean()),
    )
    if real is not None:
        result.measured_real = list(real)
        result.mean_absolute_error_vs_real = float(np.mean(np.abs(np.asarray(real) - np.asarray(values))))
    return result


def _swept_fidelity(
    model, name: str, recorded: list[float], n: int, seed: int, device: str, measure, guidance: float, callback
) -> Fidelity:
    """One covariate evenly over the held-out subjects' range, the others at their defaults."""
    requested = np.linspace(min(recorded), max(recorded), n).tolist()
    measured = [
        measure(
            model.sample(
                {name: value},
                seed=seed + 1000 + i,
                device=device,
                guidance=guidance,
                extrapolate=True,
                callback=callback,
            ).volume,
            model.config.affine_array,
        )
        for i, value in enumerate(requested)
    ]
    return _fidelity_of(name, requested, measured)
