"""Samples of a model across the age range, each with volumes typical of its age in a cohort.

    python recipes/demo/age_figure.py COHORT OUTPUT.png [--model demo] [--seed 3]

Typical volumes are least-squares fits on the cohort's ``participants.tsv``: log ventricular volume
and brain volume, each linear in age. Sex is female for every sample; one seed is shared by all.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

import brainsynth
from brainsynth.figures import save_orthogonal_slices

AGES = (45.0, 55.0, 65.0, 75.0, 82.0)


def typical_volumes(participants: Path, ages: tuple[float, ...]) -> list[tuple[float, float]]:
    """Ventricular and brain volume (ml) typical of each age in the cohort."""
    with open(participants, newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    age = np.array([float(r["age"]) for r in rows])
    ventricles = np.log([float(r["ventricular_volume_ml"]) for r in rows])
    brain = np.array([float(r["brain_volume_ml"]) for r in rows])
    fit_v, fit_b = np.polyfit(age, ventricles, 1), np.polyfit(age, brain, 1)
    return [(float(np.exp(np.polyval(fit_v, a))), float(np.polyval(fit_b, a))) for a in ages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path, help="cohort folder with participants.tsv")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    model = brainsynth.load_model(args.model)
    volumes, titles = [], []
    for age, (ventricles, brain) in zip(AGES, typical_volumes(args.cohort / "participants.tsv", AGES), strict=True):
        result = model.sample(
            {"sex": "female", "age": age, "ventricular_volume": ventricles, "brain_volume": brain},
            seed=args.seed,
            extrapolate=True,
        )
        volumes.append(result.volume)
        titles.append(f"{age:.0f} y, ventricles {ventricles:.0f} ml")
    save_orthogonal_slices(volumes, [model.config.affine_array] * len(volumes), args.output, titles=titles, columns=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
