"""How good edits are, against the truth the synthetic cohort knows: a subject's own follow-up.

For ``n`` held-out synthetic subjects, each is edited from its age to ``+years`` (each of ``years``)
with the model (age raised, ventricular and brain volume moved by the cohort's own cross-sectional age
trends, fitted on the held-out subjects; one inversion per subject), and compared with the same subject
rendered ``years`` later (:func:`brainsynth.synthetic.anatomy.follow_up`) against two baselines: doing
nothing (the scan itself) and sampling afresh at the target covariates. Reported: SSIM and PSNR of
each against the true follow-up, the correlation of the ventricular change measured in the edits with
the true change (and their mean ratio), identity (each edit nearer its own follow-up than any other
subject's), and the inversion round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth.evaluation.metrics import psnr, ssim
from brainsynth.model import LatentDiffusionModel
from brainsynth.progress import WorkCallback, report


def _held_out(model: LatentDiffusionModel, n: int, seed: int):
    from brainsynth.synthetic.anatomy import Grid, draw_subject, synthesize_subject

    grid = Grid(tuple(model.config.image_shape), model.config.affine_array)
    rng = np.random.default_rng(20_000 + seed)
    subjects = []
    for _ in range(n):
        params = draw_subject(rng)
        subjects.append((params, synthesize_subject(params, grid)))
    return grid, subjects


def _scaled(volume: np.ndarray) -> np.ndarray:
    """As the training data were scaled: 1 at the 99.5th percentile, clipped."""
    high = float(np.percentile(volume, 99.5))
    return np.clip(volume / max(high, 1e-6), 0.0, 1.0).astype(np.float32)


def _trends(subjects) -> dict[str, tuple[float, float]]:
    """Least-squares age slopes of log ventricular volume and of brain volume across the subjects."""
    ages = np.array([p.age for p, _ in subjects])
    log_ventricles = np.log([s["ventricular_volume_ml"] for _, s in subjects])
    brain = np.array([s["brain_volume_ml"] for _, s in subjects])
    return {"log_ventricular_volume": np.polyfit(ages, log_ventricles, 1), "brain_volume": np.polyfit(ages, brain, 1)}


def evaluate_edits(
    model: LatentDiffusionModel,
    output: str | Path | None = None,
    *,
    n: int = 16,
    years: Sequence[float] = (10.0, 20.0),
    seed: int = 0,
    steps: int | None = None,
    strength: float | None = None,
    device: str = "auto",
    callback: WorkCallback | None = None,
) -> dict[str, Any]:
    """Measure edits against true follow-ups (see the module); write ``edits.json`` and ``edits.md`` into
    ``output`` when given, and return the numbers."""
    from brainsynth.scans.editing import EDIT_STRENGTH, edit
    from brainsynth.scans.scan import Scan
    from brainsynth.synthetic.anatomy import follow_up, synthesize_subject

    strength = EDIT_STRENGTH if strength is None else strength
    names = model.config.covariate_names
    grid, subjects = _held_out(model, n, seed)
    trend = _trends(subjects)
    rows: list[dict[str, Any]] = []
    follow_ups: dict[float, list[np.ndarray]] = {y: [] for y in years}
    edits: dict[float, list[np.ndarray]] = {y: [] for y in years}
    for index, (params, subject) in enumerate(subjects):
        report(callback, index, n, "subject", f"editing subject {index + 1}")
        scan = Scan.on_model_grid(_scaled(subject["t1"]), model)
        source = {
            "sex": params.sex,
            "age": params.age,
            "ventricular_volume": subject["ventricular_volume_ml"],
            "brain_volume": subject["brain_volume_ml"],
        }
        source = {k: v for k, v in source.items() if k in names}
        targets = []
        for y in years:
            target = {"age": params.age + y}
            if "ventricular_volume" in names:
                target["ventricular_volume"] = source["ventricular_volume"] * float(
                    np.exp(trend["log_ventricular_volume"][0] * y)
                )
            if "brain_volume" in names:
                target["brain_volume"] = source["brain_volume"] + float(trend["brain_volume"][0]) * y
            targets.append({k: v for k, v in target.items() if k in names})
        result = edit(
            model, scan, targets, source=source, strength=strength, steps=steps, device=device, extrapolate=True
        )
        for i, y in enumerate(years):
            later = synthesize_subject(follow_up(params, y), grid)
            truth = _scaled(later["t1"])
            fresh = model.sample(targets[i], seed=seed + index, device=device, extrapolate=True).volume
            edited = np.clip(result.on_scan[i], 0.0, 1.0)  # the scan plus the edit's change
            follow_ups[y].append(truth)
            edits[y].append(edited)
            rows.append(
                {
                    "subject": index,
                    "years": y,
                    "ssim": {
                        "edit": ssim(truth, edited),
                        "scan": ssim(truth, scan.volume),
                        "fresh": ssim(truth, np.clip(fresh, 0, 1)),
                    },
                    "psnr_db": {
                        "edit": psnr(truth, edited),
                        "scan": psnr(truth, scan.volume),
                        "fresh": psnr(truth, np.clip(fresh, 0, 1)),
                    },
                    "true_ventricular_change_ml": later["ventricular_volume_ml"] - subject["ventricular_volume_ml"],
                    "measured_ventricular_change_ml": (
                        result.measured[i].get("ventricular_volume", float("nan"))
                        - result.measured_source.get("ventricular_volume", float("nan"))
                    ),
                    "roundtrip_psnr_db": result.roundtrip_psnr_db,
                }
            )
    report(callback, n, n, "subject", "identity")
    summary: dict[str, Any] = {"n": n, "years": list(years), "strength": strength, "model": model.name}
    for y in years:
        mine = [r for r in rows if r["years"] == y]
        true = np.array([r["true_ventricular_change_ml"] for r in mine])
        measured = np.array([r["measured_ventricular_change_ml"] for r in mine])
        own = [[ssim(truth, e) for truth in follow_ups[y]] for e in edits[y]]
        summary[f"+{y:g} years"] = {
            "ssim": {k: float(np.mean([r["ssim"][k] for r in mine])) for k in ("edit", "scan", "fresh")},
            "psnr_db": {k: float(np.mean([r["psnr_db"][k] for r in mine])) for k in ("edit", "scan", "fresh")},
            "ventricular_change_r": float(np.corrcoef(true, measured)[0, 1])
            if "ventricular_volume" in names
            else float("nan"),
            "ventricular_change_ratio": float(np.mean(measured / np.where(true == 0, np.nan, true))),
            "identity": float(np.mean([int(np.argmax(row) == i) for i, row in enumerate(own)])),
        }
    summary["roundtrip_psnr_db"] = float(np.mean([r["roundtrip_psnr_db"] for r in rows]))
    if output is not None:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "edits.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2) + "\n")
        (folder / "edits.md").write_text(render_edits(summary))
    return summary


def render_edits(summary: dict[str, Any]) -> str:
    """The edit evaluation as markdown."""
    lines = [
        f"# Edits of {summary['model']} against true follow-ups",
        "",
        f"{summary['n']} held-out synthetic subjects, each edited to +{', +'.join(f'{y:g}' for y in summary['years'])} "
        f"years at strength {summary['strength']:g}; inversion round trip {summary['roundtrip_psnr_db']:.1f} dB.",
        "",
        "| follow-up | SSIM edit / scan / fresh sample | PSNR (dB) edit / scan / fresh | ventricular change r | "
        "measured / true change | identity |",
        "|---|---|---|---|---|---|",
    ]
    for y in summary["years"]:
        item = summary[f"+{y:g} years"]
        s, p = item["ssim"], item["psnr_db"]
        lines.append(
            f"| +{y:g} years | {s['edit']:.3f} / {s['scan']:.3f} / {s['fresh']:.3f} | "
            f"{p['edit']:.2f} / {p['scan']:.2f} / {p['fresh']:.2f} | {item['ventricular_change_r']:.3f} | "
            f"{item['ventricular_change_ratio']:.2f} | {item['identity']:.0%} |"
        )
    return "\n".join(lines) + "\n"
