"""What an evaluation found (:class:`EvaluationReport`, :class:`Fidelity`) and the files it is written as:
``report.json``, ``report.md`` (a table in the style of the paper's Table 1) and the figures."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brainsynth.evaluation.denoising import DenoisingError


@dataclass
class Fidelity:
    """Requested against measured values of one covariate."""

    covariate: str
    requested: list[float]
    measured: list[float]
    pearson_r: float
    mean_absolute_error: float
    measured_real: list[float] = field(default_factory=list)
    mean_absolute_error_vs_real: float = float("nan")


@dataclass
class EvaluationReport:
    """Everything ``brainsynth evaluate`` measured (also written as ``report.json``)."""

    model: str
    n: int
    real_images: str
    reconstruction_psnr_db: float
    reconstruction_ssim: float
    samples_ms_ssim: float
    real_ms_ssim: float
    samples_gradient_ssim: float = float("nan")
    real_gradient_ssim: float = float("nan")
    fidelity_design: str = "cohort"
    fidelity: list[Fidelity] = field(default_factory=list)
    segmenter_agreement: dict[str, float] = field(default_factory=dict)
    seconds_per_sample: float = 0.0
    denoising: list[DenoisingError] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def write_report(report: EvaluationReport, output: Path, model, real, reconstructions, samples) -> None:
    """Write ``report.json``, ``report.md`` and the figures of an evaluation into ``output``."""
    from brainsynth.figures import save_orthogonal_slices, save_scatter

    affine = model.config.affine_array
    save_orthogonal_slices(
        real[:2] + reconstructions[:2],
        [affine] * 4,
        output / "reconstruction.png",
        titles=["real 1", "real 2", "reconstruction 1", "reconstruction 2"],
        columns=2,
    )
    save_orthogonal_slices(samples[:8], [affine] * len(samples[:8]), output / "samples.png", columns=2)
    for item in report.fidelity:
        save_scatter(
            item.requested,
            item.measured,
            output / f"fidelity_{item.covariate}.png",
            label=model.config.covariate(item.covariate).label,
            real=item.measured_real or None,
            title=f"r = {item.pearson_r:.3f}, MAE = {item.mean_absolute_error:.1f} ml",
        )
    (output / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (output / "report.md").write_text(render_markdown(report))


_DESIGN_TEXT = {
    "cohort": 'Each sample asked for the covariates of one held-out real subject; "MAE vs real image" compares '
    "the sample's measurement with the same segmenter's measurement of that subject's image, which "
    "cancels the segmenter's own bias.",
    "sweep": "One covariate at a time was spread evenly over the held-out subjects' range, the others at the "
    "model's defaults.",
}


def render_markdown(report: EvaluationReport) -> str:
    """The report as markdown, with a table in the style of the paper's Table 1."""
    guidance = report.settings.get("guidance", 1.0)
    lines = [
        f"# Evaluation of {report.model}",
        "",
        f"{report.n} samples per measurement; real images from `{report.real_images}`; "
        f"sampling with {report.settings['scheduler']} at {report.settings['steps']} steps"
        f"{'' if guidance == 1.0 else f', guidance {guidance:g}'} on "
        f"{report.settings['device']}.",
        "",
        "| model | MS-SSIM | 4-G-R-SSIM | reconstruction PSNR (dB) | reconstruction SSIM | s per sample |",
        "|---|---|---|---|---|---|",
        f"| {report.model} (samples) | {report.samples_ms_ssim:.4f} | {report.samples_gradient_ssim:.4f} | "
        f"{report.reconstruction_psnr_db:.2f} | {report.reconstruction_ssim:.4f} | {report.seconds_per_sample:.2f} |",
        f"| real images | {report.real_ms_ssim:.4f} | {report.real_gradient_ssim:.4f} | | | |",
        "",
        "Diversity is good when the samples' MS-SSIM and 4-G-R-SSIM (both the mean over pairs) are close to the "
        "real images'. The paper's third measure, FID on Med3D features, needs Med3D's pretrained weights, which "
        "brainsynth does not download; it is not reported.",
        "",
        "## Conditioning fidelity",
        "",
        _DESIGN_TEXT[report.fidelity_design],
        "",
        "| covariate | Pearson r (requested vs measured) | MAE vs requested (ml) | MAE vs real image (ml) "
        "| segmenter vs recorded r (real images) |",
        "|---|---|---|---|---|",
    ]
    for item in report.fidelity:
        agreement = report.segmenter_agreement.get(item.covariate, float("nan"))
        lines.append(
            f"| {item.covariate} | {item.pearson_r:.3f} | {item.mean_absolute_error:.1f} | "
            f"{item.mean_absolute_error_vs_real:.1f} | {agreement:.3f} |"
        )
    lines += [
        "",
        "The last column is the segmenter's agreement with the recorded volumes on real images: "
        "the ceiling of a sample's r.",
    ]
    if report.denoising:
        lines += [
            "",
            "## Denoising by noise level",
            "",
            "The held-out images' latents, noised to each timestep and estimated back by the U-Net with "
            "their own covariates. Relative error: RMS error over the latents' spread (predicting their "
            "mean latent scores about 1; above 1, the U-Net does worse than the average brain at that "
            "noise level, and samples inherit it). Background: RMS error in latent units where the real "
            "latents hardly vary between images.",
            "",
            "| timestep | signal-to-noise ratio | relative error | background error |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {d.timestep} | {d.signal_to_noise:.4g} | {d.relative_error:.3f} | {d.constant_region_error:.3f} |"
            for d in report.denoising
        ]
    lines += [
        "",
        *[f"![{f.covariate}](fidelity_{f.covariate}.png)" for f in report.fidelity],
        "",
        "![samples](samples.png)",
        "",
        "![reconstruction](reconstruction.png)",
        "",
    ]
    return "\n".join(lines)
