"""A tiny model that has memorised its training set: two people of the synthetic cohort on the 8 mm
grid, trained far past the point of generalising. The audit's tests sample it and must flag the
samples as copies.

    python recipes/audit/overfit_two.py WORK_DIR [--into tests/data/overfit-two]

The two people are ``generate_cohort(2, spacing=8, seed=11)``; the test makes them again from the
same seed. Both stages resume from WORK_DIR's checkpoints; the finished model folder is copied to
``--into``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from brainsynth.synthetic.cohort import generate_cohort
from brainsynth.training import train_autoencoder, train_diffusion
from brainsynth.training.settings import PRESETS_DIR

PEOPLE, SPACING, SEED = 2, 8.0, 11
AUTOENCODER = {
    "steps": 400,
    "lr": 0.002,
    "adversarial_warmup": 400,  # no adversarial loss: a sharp reconstruction of two images is all that is asked
    "perceptual_weight": 0.0,
    "checkpoint_every": 100,
    "image_every": 400,
    "log_every": 20,
}
DIFFUSION = {
    "steps": 4000,
    "lr": 0.002,
    "latents": "mean",  # the posterior means: a fixed target per person, as a memorising model needs
    "ema_decay": 0.995,
    "conditioning_dropout": 0.0,
    "checkpoint_every": 500,
    "image_every": 4000,
    "log_every": 50,
    "sampling_steps": 50,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--into", type=Path, default=Path(__file__).resolve().parents[2] / "tests/data/overfit-two")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    people = args.work / "people"
    if not people.exists():
        generate_cohort(PEOPLE, people, spacing=SPACING, seed=SEED)
    config = json.loads((PRESETS_DIR / "tiny.json").read_text())
    config["name"] = "overfit-two"
    config["description"] = "A tiny model memorising two people of the synthetic cohort, for the audit's tests."
    config["autoencoder"].update(AUTOENCODER)
    config["diffusion"].update(DIFFUSION)
    config["diffusion"]["noise_schedule"]["prediction_type"] = "v_prediction"
    path = args.work / "config.json"
    path.write_text(json.dumps(config, indent=1))
    autoencoder, model = args.work / "autoencoder", args.work / "model"
    if not (autoencoder / "autoencoder.json").exists():
        train_autoencoder(people, path, autoencoder, device="cpu", resume=autoencoder.exists(), quiet=True)
    if not (model / "model.json").exists():
        train_diffusion(people, autoencoder, path, model, device="cpu", resume=model.exists(), quiet=True)
    run = model
    args.into.mkdir(parents=True, exist_ok=True)
    for name in ("model.json", "autoencoder.safetensors", "unet.safetensors", "README.md"):
        shutil.copy(Path(run) / name, args.into / name)
    print(f"model folder in {args.into}")


if __name__ == "__main__":
    main()
