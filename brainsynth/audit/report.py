"""The audit's report: ``report.json`` (every audited image), ``report.md`` and its two figures."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth._version import __version__
from brainsynth.audit.images import read_on_grid
from brainsynth.audit.run import AuditedImage, AuditResult
from brainsynth.figures import save_orthogonal_slices
from brainsynth.files.atomic import atomic_write_bytes, atomic_write_json

#: Closest pairs shown side by side in ``closest.png``.
PAIRS_SHOWN = 4

CRITERION_TEXT = {
    "pixel": (
        "Pearson correlation of what sets each image apart from the average training image (the training mean "
        "subtracted), in the training images' head mask, the best over shifts of up to one voxel per axis; a first "
        "pass compares every pair on a coarse grid and keeps the closest candidates for the full-resolution pass"
    ),
    "latent": (
        "Pearson correlation of the autoencoder's latents (posterior means, the training latents' mean subtracted), "
        "every pair"
    ),
}


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def margin(image: AuditedImage, thresholds: dict[str, float]) -> float:
    """How far above (positive) or below its nearest threshold an image's closest match lies."""
    return max(image.nearest[c].similarity - t for c, t in thresholds.items())


def _entry(image: AuditedImage, result: AuditResult, folder: Path) -> dict[str, Any]:
    training = result.request.training
    return {
        "file": _relative(image.file, folder),
        "flagged": image.flagged,
        "resampled": image.resampled,
        **{
            c: {
                "nearest": _relative(training[found.index], result.request.data),
                "similarity": round(found.similarity, 5),
                "above_threshold": found.similarity > result.thresholds[c],
            }
            for c, found in image.nearest.items()
        },
    }


def summary(result: AuditResult) -> dict[str, Any]:
    """The audit's figures in a few numbers (also what a dataset card shows)."""
    audited, flagged = len(result.audited), len(result.flagged)
    held = result.calibration
    return {
        "audited": audited,
        "flagged": flagged,
        "flagged_fraction": round(flagged / audited, 5) if audited else None,
        "flagged_by_criterion": {
            c: sum(i.nearest[c].similarity > t for i in result.audited) for c, t in result.thresholds.items()
        },
        "real_images_flagged_fraction": round(sum(i.flagged for i in held) / len(held), 5),
        "false_positive_rate": result.request.false_positive_rate,
        "thresholds": {c: round(t, 5) for c, t in result.thresholds.items()},
        "calibration": result.calibration_source,
        "training_images": len(result.request.training),
        "unreadable": len(result.unreadable),
        "missing": len(result.missing),
    }


def report_json(result: AuditResult) -> dict[str, Any]:
    """Everything the audit found, for machines."""
    ranked = sorted(result.audited, key=lambda i: margin(i, result.thresholds), reverse=True)
    return {
        "brainsynth": __version__,
        "summary": summary(result),
        "criteria": {c: CRITERION_TEXT[c] for c in result.request.criteria},
        "grid": {"shape": list(result.grid.shape), "affine": np.asarray(result.grid.affine).tolist()},
        "latent_precision": result.precision if "latent" in result.thresholds else None,
        "training": {
            "folder": str(result.request.data),
            "images": len(result.request.training),
            "resampled": [_relative(p, result.request.data) for p in result.training_resampled],
        },
        "samples": {
            "folder": str(result.samples_folder),
            "unreadable": [{"file": _relative(p, result.samples_folder), "reason": r} for p, r in result.unreadable],
            "missing": result.missing,
        },
        "calibration": {
            "source": result.calibration_source,
            "images": [
                _entry(i, result, result.request.held_out_folder or result.request.data) for i in result.calibration
            ],
        },
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "audited": [_entry(i, result, result.samples_folder) for i in ranked],
    }


def _similarity_figure(result: AuditResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    criteria = list(result.thresholds)
    figure, axes = plt.subplots(1, len(criteria), figsize=(4.2 * len(criteria), 3.2), squeeze=False)
    for axis, criterion in zip(axes[0], criteria, strict=True):
        samples = [i.nearest[criterion].similarity for i in result.audited]
        real = [i.nearest[criterion].similarity for i in result.calibration]
        values = samples + real
        bins = np.linspace(min(values), max(max(values), result.thresholds[criterion]) + 1e-6, 31)
        axis.hist(real, bins=bins, density=True, alpha=0.55, color="tab:orange", label="real images unseen in training")
        axis.hist(samples, bins=bins, density=True, alpha=0.55, color="tab:blue", label="audited samples")
        axis.axvline(result.thresholds[criterion], color="tab:red", linewidth=1.2, label="threshold")
        axis.set_xlabel(f"{criterion}: similarity to the nearest training image")
        axis.set_yticks([])
        axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def _closest_figure(result: AuditResult, ranked: list[AuditedImage], path: Path) -> None:
    volumes, titles = [], []
    for image in ranked[:PAIRS_SHOWN]:
        criterion = max(result.thresholds, key=lambda c: image.nearest[c].similarity - result.thresholds[c])
        found = image.nearest[criterion]
        training = result.request.training[found.index]
        volumes += [read_on_grid(image.file, result.grid)[0], read_on_grid(training, result.grid)[0]]
        titles += [
            f"{image.file.name} {'FLAGGED' if image.flagged else ''}",
            f"{training.name} ({criterion} {found.similarity:.3f})",
        ]
    affine = np.asarray(result.grid.affine)
    save_orthogonal_slices(volumes, [affine] * len(volumes), path, titles=titles, columns=2)


def _markdown(result: AuditResult, ranked: list[AuditedImage]) -> str:
    s = summary(result)
    rate = s["false_positive_rate"]
    lines = [
        "# Memorisation audit",
        "",
        f"**{s['flagged']} of {s['audited']} samples flagged** ({100 * (s['flagged_fraction'] or 0):.1f} %) "
        f"as closer to a training image than {100 * (1 - rate):g} % of real images unseen in training are.",
        "",
        f"- Samples: `{result.samples_folder}`; {s['unreadable']} unreadable, {s['missing']} missing "
        "(listed in report.json)",
        f"- Training images: {s['training_images']} in `{result.request.data}`"
        + (f" ({len(result.training_resampled)} resampled onto the grid)" if result.training_resampled else ""),
        f"- Grid: {result.grid.describe()}"
        + (
            f"; {sum(i.resampled for i in result.audited)} samples were on another grid and were resampled onto it"
            if any(i.resampled for i in result.audited)
            else ""
        ),
        f"- Calibration: {result.calibration_source}; {100 * s['real_images_flagged_fraction']:.1f} % of them flagged",
        "",
        "| criterion | what it compares | threshold | samples above |",
        "|---|---|---|---|",
    ]
    for c, t in result.thresholds.items():
        lines.append(f"| {c} | {CRITERION_TEXT[c]} | {t:.4f} | {s['flagged_by_criterion'][c]} |")
    lines += [
        "",
        f"A sample is flagged when it is above the threshold of any criterion; each threshold is the conformal "
        f"quantile of the calibration images' similarities at {100 * rate / len(result.thresholds):g} %, so a real "
        f"image unseen in training is flagged with a probability of at most {100 * rate:g} %.",
        "",
        "![similarities](similarities.png)",
        "",
        "## The closest pairs",
        "",
        "![closest pairs](closest.png)",
        "",
        "| sample | " + " | ".join(f"nearest ({c})" for c in result.thresholds) + " | flagged |",
        "|---|" + "---|" * len(result.thresholds) + "---|",
    ]
    training = result.request.training
    for image in ranked[:10]:
        cells = [
            f"{training[image.nearest[c].index].name} {image.nearest[c].similarity:.4f}" for c in result.thresholds
        ]
        lines.append(f"| {image.file.name} | " + " | ".join(cells) + f" | {'yes' if image.flagged else 'no'} |")
    lines += [
        "",
        "## Reading it",
        "",
        "A flag says a sample is unusually close to one training image, as a copy (or a near copy) would be; it is a "
        "reason to look at the pair, not proof of memorisation, and an unflagged sample can still share details with "
        "training data that these criteria do not see. Seconds: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" for k, v in result.seconds.items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_report(result: AuditResult, folder: Path) -> None:
    """Write ``report.json``, ``report.md``, ``similarities.png`` and ``closest.png`` into ``folder``."""
    ranked = sorted(result.audited, key=lambda i: margin(i, result.thresholds), reverse=True)
    atomic_write_json(folder / "report.json", report_json(result))
    if result.audited:
        _similarity_figure(result, folder / "similarities.png")
        _closest_figure(result, ranked, folder / "closest.png")
    atomic_write_bytes(folder / "report.md", _markdown(result, ranked).encode())
