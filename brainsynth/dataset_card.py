"""The dataset card ``generate`` writes beside the data: what made the brains, how, what they hold.

It is rendered from the folder itself (the record ``covariates.tsv``, the brains present, one
brain's sidecar for the model and sampling settings), so every shard of a dataset writes the same
card, and rewriting it after a resume brings its counts up to date. ``brainsynth audit`` fills its
audit section.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth._version import __version__
from brainsynth.files.atomic import atomic_write_bytes

CARD = "DATASET_CARD.md"
#: The covariates' histograms, beside the card.
COVARIATES_FIGURE = "covariates.png"
_AUDIT = re.compile(r"<!-- audit -->.*<!-- /audit -->", re.DOTALL)
#: Settings of a brain's sidecar that the card lists under sampling.
SAMPLING_KEYS = (
    "scheduler",
    "steps",
    "eta",
    "guidance",
    "timestep_spacing",
    "precision",
    "weight_dtype",
    "decoding",
    "device",
    "batch_size",
    "dtype",
)

NO_AUDIT = (
    "No memorisation audit has been run on this dataset. Before sharing it, compare it with the model's "
    "training images: `brainsynth audit --data TRAINING_DIR --samples {folder} --model MODEL --output REPORT_DIR`."
)


def _read_record(folder: Path) -> list[dict[str, str]]:
    from brainsynth.generate import RECORD

    with (folder / RECORD).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _first_sidecar(folder: Path, rows: list[dict[str, str]]) -> dict[str, Any]:
    for row in rows:
        path = folder / f"{row['id']}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
    return {}


def _numeric(values: list[str]) -> np.ndarray | None:
    try:
        return np.asarray([float(v) for v in values if v != ""], dtype=np.float64)
    except ValueError:
        return None


def _covariate_lines(rows: list[dict[str, str]], names: list[str]) -> list[str]:
    lines = ["| covariate | brains | distribution |", "|---|---|---|"]
    for name in names:
        values = [row.get(name, "") for row in rows]
        numbers = _numeric(values)
        if numbers is not None and numbers.size:
            low, median, high = np.percentile(numbers, [0, 50, 100])
            text = f"min {low:g}, median {median:g}, max {high:g}"
        else:
            counts = {v: values.count(v) for v in sorted(set(values))}
            text = ", ".join(f"{v or '(default)'} {c}" for v, c in counts.items())
        lines.append(f"| {name} | {sum(v != '' for v in values)} | {text} |")
    return lines


def _covariates_figure(rows: list[dict[str, str]], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(names), figsize=(2.8 * len(names), 2.4), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        values = [row.get(name, "") for row in rows if row.get(name, "") != ""]
        numbers = _numeric(values)
        if numbers is not None and numbers.size:
            axis.hist(numbers, bins=min(20, max(5, numbers.size // 5)), color="tab:blue")
        else:
            levels = sorted(set(values))
            axis.bar(levels, [values.count(v) for v in levels], color="tab:blue")
        axis.set_title(name, fontsize=9)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def _size(folder: Path, rows: list[dict[str, str]]) -> tuple[int, int]:
    present = [folder / f"{row['id']}.nii.gz" for row in rows if (folder / f"{row['id']}.nii.gz").is_file()]
    return len(present), sum(p.stat().st_size for p in present)


def render_card(folder: Path, model: Any, *, audit: str | None = None) -> str:
    """The card's text for the dataset in ``folder`` (made by ``generate`` with ``model``)."""
    rows = _read_record(folder)
    sidecar = _first_sidecar(folder, rows)
    names = list(model.config.covariate_names)
    present, size = _size(folder, rows)
    weights = sidecar.get("weights") or {}
    sampling = [f"- {key}: {sidecar[key]}" for key in SAMPLING_KEYS if key in sidecar]
    lines = [
        f"# Synthetic brains from {model.name}",
        "",
        f"{present} of {len(rows)} brains of the record are in this folder ({size / 1e6:.1f} MB), each a NIfTI "
        f"file (`ID.nii.gz`) with a JSON sidecar (`ID.json`: covariates, seed, model, sampling settings, versions); "
        f"`covariates.tsv` lists every brain asked for with its seed. Made with brainsynth {__version__}.",
        "",
        "## Model",
        "",
        f"- name: {model.name}",
        f"- source: {sidecar.get('model_source', model.source)}",
        *(
            f"- {name} weights: `{entry.get('file', '')}`, sha256 `{entry.get('sha256', entry.get('md5', ''))}`"
            for name, entry in weights.items()
        ),
        *([] if weights else ["- weights: no hashes recorded (a model built in memory, not loaded from files)"]),
        f"- grid: {' x '.join(map(str, model.config.image_shape))} voxels, "
        f"affine {np.asarray(model.config.affine).tolist()}",
        "",
        model.config.description,
        "",
        "## Sampling",
        "",
        *(sampling or ["- (no brain written yet)"]),
        "- seeds: per brain, in `covariates.tsv` (the same seed and covariates give the same brain)",
        "",
        "## Covariates",
        "",
        *_covariate_lines(rows, names),
        "",
        f"![covariates]({COVARIATES_FIGURE})",
        "",
        "## Audit",
        "",
        "<!-- audit -->",
        audit or NO_AUDIT.format(folder=folder),
        "<!-- /audit -->",
        "",
        "## Intended use",
        "",
        "Developing and testing image-analysis methods, teaching, data augmentation and benchmarking, where "
        "synthetic images stand in for real ones whose sharing is restricted.",
        "",
        "## Limits",
        "",
        "- These are samples of a model, not images of people: they carry what the model learned from its training "
        "data, its biases and its errors included, and nothing about any person beyond it.",
        "- The covariates are what was asked for; how closely each brain follows them is the model's fidelity "
        "(see its evaluation), not a measurement of the brain.",
        "- Not for clinical use or for conclusions about a population without validation on real data.",
        "- A model can reproduce training images; the audit above says whether this dataset was checked for that.",
        "",
    ]
    return "\n".join(lines)


def write_card(folder: str | Path, model: Any) -> Path:
    """Write (or bring up to date) the card and the covariates figure of the dataset in ``folder``."""
    folder = Path(folder)
    previous = folder / CARD
    audit = None
    if previous.is_file():
        found = _AUDIT.search(previous.read_text(encoding="utf-8"))
        if found and NO_AUDIT.split(".")[0] not in found.group(0):
            audit = found.group(0).removeprefix("<!-- audit -->\n").removesuffix("\n<!-- /audit -->")
    rows = _read_record(folder)
    _covariates_figure(rows, list(model.config.covariate_names), folder / COVARIATES_FIGURE)
    atomic_write_bytes(previous, render_card(folder, model, audit=audit).encode())
    return previous


def record_audit(folder: str | Path, summary: Mapping[str, Any], report: str | Path) -> bool:
    """Put an audit's summary into the card of the dataset in ``folder``; False when it has no card."""
    card = Path(folder) / CARD
    if not card.is_file():
        return False
    share = summary["flagged_fraction"] or 0.0
    text = (
        f"Audited with brainsynth {__version__} against {summary['training_images']} training images (report: "
        f"`{report}`): **{summary['flagged']} of {summary['audited']} brains flagged ({100 * share:.1f} %)** as closer "
        f"to a training image than {100 * (1 - summary['false_positive_rate']):g} % of real images unseen in "
        f"training are (calibration: {summary['calibration']}; thresholds "
        + ", ".join(f"{c} {t}" for c, t in summary["thresholds"].items())
        + f"; {summary['unreadable']} unreadable, {summary['missing']} missing)."
    )
    content = _AUDIT.sub(lambda _: f"<!-- audit -->\n{text}\n<!-- /audit -->", card.read_text(encoding="utf-8"))
    atomic_write_bytes(card, content.encode())
    return True
