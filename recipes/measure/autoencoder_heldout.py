"""An autoencoder on held-out subjects: reconstruction PSNR, and what the segmenter reads in its reconstructions.

    python recipes/measure/autoencoder_heldout.py SOURCE [SOURCE ...] [--n 60] [--volumes]

SOURCE is a model (name or folder) or a trained autoencoder's run folder. The held-out subjects are the
synthetic cohort ``brainsynth evaluate`` makes (seed 10000, 2 mm), read as training and evaluation read
them. With ``--volumes``, brain and ventricular volume are measured (``brainsynth.evaluation.volumetry``)
in each real image and in its reconstruction and compared with the recorded values: the reconstructions'
agreement bounds what the segmenter can read in the model's samples.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

import brainsynth
from brainsynth.bids import DataSettings, TrainingImages
from brainsynth.evaluation.metrics import psnr
from brainsynth.evaluation.volumetry import measure_volumes
from brainsynth.synthetic.cohort import generate_cohort
from brainsynth.training.autoencoder import load_trained_autoencoder


def load_autoencoder(source: str) -> tuple[torch.nn.Module, np.ndarray]:
    """The autoencoder of a model or of an autoencoder run, and its grid's affine."""
    if (Path(source) / "autoencoder.json").is_file():
        autoencoder, manifest = load_trained_autoencoder(source)
        return autoencoder, np.asarray(manifest["affine"])
    model = brainsynth.load_model(source)
    return model.autoencoder.eval(), np.asarray(model.config.affine)


def pearson(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--volumes", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data = generate_cohort(args.n, Path(work) / "held_out", spacing=2.0, seed=10_000, overwrite=True)
        images = TrainingImages(data, DataSettings(spacing=2.0, shape=(80, 112, 80), covariates="ukb"))
        with open(Path(data) / "participants.tsv", newline="") as stream:
            recorded = list(csv.DictReader(stream, delimiter="\t"))
        real = [images.images(torch.tensor([i]))[0, 0].numpy() for i in range(args.n)]
    for source in args.sources:
        autoencoder, affine = load_autoencoder(source)
        values, readings = [], []
        with torch.no_grad():
            for image in real:
                mu, _ = autoencoder.encode(torch.as_tensor(image)[None, None])
                reconstruction = autoencoder.decode(mu)[0, 0].clamp(0, 1).numpy()
                values.append(psnr(image, reconstruction))
                if args.volumes:
                    readings.append((measure_volumes(image, affine), measure_volumes(reconstruction, affine)))
        print(
            f"{source}: PSNR {np.mean(values):.2f} dB (sd {np.std(values):.2f}, "
            f"lowest {np.min(values):.2f}), {args.n} subjects"
        )
        for name in ("brain_volume_ml", "ventricular_volume_ml") if readings else ():
            truth = [float(row[name]) for row in recorded[: args.n]]
            of_real = [getattr(pair[0], name) for pair in readings]
            of_reconstruction = [getattr(pair[1], name) for pair in readings]
            print(
                f"  {name}: real images r {pearson(of_real, truth):.3f}; reconstructions r "
                f"{pearson(of_reconstruction, truth):.3f}, {np.mean(np.subtract(of_reconstruction, truth)):+.1f} ml"
            )


if __name__ == "__main__":
    main()
