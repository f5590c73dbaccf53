"""The memorisation audit on real (synthetic-cohort) images: copies of training images are caught,
people unseen in training are not, and the report says what was found for every sample."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.audit import audit
from brainsynth.errors import SamplingCancelled
from brainsynth.progress import WorkProgress

TRAINING, UNSEEN = 40, 20
#: A tiny model trained on two people until it copies them (recipes/audit/overfit_two.py).
OVERFIT = Path(__file__).resolve().parent / "data" / "overfit-two"


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """60 people of the synthetic cohort on the 8 mm grid: 40 to train on, 20 unseen."""
    from brainsynth.synthetic.cohort import generate_cohort

    root = tmp_path_factory.mktemp("audit")
    cohort = generate_cohort(TRAINING + UNSEEN, root / "cohort", spacing=8.0, seed=5)
    images = sorted(cohort.glob("sub-*/anat/*.nii.gz"))
    folders = {"training": root / "training", "unseen": root / "unseen"}
    for name, chosen in (("training", images[:TRAINING]), ("unseen", images[TRAINING:])):
        folders[name].mkdir()
        for path in chosen:
            shutil.copy(path, folders[name] / path.name)
    return folders


def perturbed_copy(path, target, rng):
    """A training image slightly changed: moved by up to a voxel per axis, intensity rescaled, noise added."""
    image = nib.load(path)
    volume = image.get_fdata(dtype=np.float32)
    volume = np.roll(volume, tuple(int(s) for s in rng.integers(-1, 2, 3)), axis=(0, 1, 2))
    volume = volume * rng.uniform(0.9, 1.1) + rng.uniform(-0.03, 0.03) + rng.normal(0, 0.02, volume.shape)
    nib.save(nib.Nifti1Image(volume.astype(np.float32), image.affine), target)


@pytest.fixture(scope="module")
def copies(people, tmp_path_factory):
    folder = tmp_path_factory.mktemp("copies")
    rng = np.random.default_rng(0)
    for path in sorted(people["training"].iterdir()):
        perturbed_copy(path, folder / f"copy_{path.name}", rng)
    return folder


def _flagged(result):
    return sum(image.flagged for image in result.audited) / len(result.audited)


def test_copies_are_flagged_and_people_unseen_in_training_are_not(people, copies, tmp_path):
    caught = audit(people["training"], tmp_path / "copies", samples=copies)
    assert caught.request.criteria == ("pixel",)
    assert _flagged(caught) >= 0.95
    for image in caught.audited:  # each copy's nearest training image is its original
        assert caught.request.training[image.nearest["pixel"].index].name == image.file.name.removeprefix("copy_")
    unseen = audit(people["training"], tmp_path / "unseen", samples=people["unseen"])
    assert _flagged(unseen) <= 0.05
    report = json.loads((tmp_path / "copies" / "report.json").read_text())
    assert len(report["audited"]) == TRAINING
    entry = report["audited"][0]
    assert set(entry) >= {"file", "flagged", "pixel"}
    assert entry["pixel"]["nearest"].endswith("_T1w.nii.gz")
    assert entry["flagged"] is True
    assert report["summary"]["calibration"] == f"leave-one-out over the {TRAINING} training images"
    assert len(report["calibration"]["images"]) == TRAINING
    for name in ("report.md", "similarities.png", "closest.png"):
        assert (tmp_path / "copies" / name).stat().st_size > 1000
    assert "samples flagged**" in (tmp_path / "copies" / "report.md").read_text()


def test_the_latent_criterion_of_a_model(people, tmp_path):
    """The autoencoder's latent tells a copy (here not moved: a voxel is 8 mm on this grid, half a latent
    voxel) from another person by itself."""
    copies = tmp_path / "copies"
    copies.mkdir()
    rng = np.random.default_rng(1)
    for path in sorted(people["training"].iterdir())[:10]:
        image = nib.load(path)
        volume = image.get_fdata(dtype=np.float32) * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, image.shape)
        nib.save(nib.Nifti1Image(volume.astype(np.float32), image.affine), copies / f"copy_{path.name}")
    model = brainsynth.load_model(OVERFIT)
    caught = audit(people["training"], tmp_path / "copies-report", samples=copies, model=model)
    assert caught.request.criteria == ("pixel", "latent")
    by_latent = [i.nearest["latent"].similarity > caught.thresholds["latent"] for i in caught.audited]
    for image in caught.audited:
        assert caught.request.training[image.nearest["latent"].index].name == image.file.name.removeprefix("copy_")
    assert sum(by_latent) >= 9
    unseen = audit(people["training"], tmp_path / "unseen", samples=people["unseen"], model=model)
    assert _flagged(unseen) <= 0.05
    report = json.loads((tmp_path / "copies-report" / "report.json").read_text())
    assert set(report["audited"][0]) >= {"pixel", "latent"}
    assert report["latent_precision"] in ("float32", "bfloat16")


def test_a_model_that_memorised_its_two_training_people_is_caught(people, tmp_path):
    from brainsynth.synthetic.cohort import generate_cohort

    two = generate_cohort(2, tmp_path / "two", spacing=8.0, seed=11)  # its training set, made again
    model = brainsynth.load_model(OVERFIT)
    # the 40 people of the fixture were never seen by this model: they calibrate
    result = audit(two, tmp_path / "report", model=model, n=6, held_out=people["training"])
    assert _flagged(result) >= 5 / 6
    assert sum(i.nearest["latent"].similarity > result.thresholds["latent"] for i in result.audited) >= 5


def test_an_audit_of_a_model_draws_its_samples_resumes_and_fills_the_dataset_card(people, trained_model, tmp_path):
    model = brainsynth.load_model(trained_model)
    output = tmp_path / "report"
    drawn = []

    def stop_after_two(progress):
        if isinstance(progress, WorkProgress) and progress.unit == "brain" and progress.step is None:
            drawn.append(progress.done)
            if progress.done == 2:
                raise SamplingCancelled("stopped")

    with pytest.raises(SamplingCancelled):
        audit(people["training"], output, model=model, n=3, callback=stop_after_two)
    assert not output.exists()
    seen = []
    result = audit(
        people["training"],
        output,
        model=model,
        n=3,
        callback=lambda p: seen.append(p) if isinstance(p, WorkProgress) and p.unit == "brain" else None,
    )
    assert {p.total for p in seen} == {1}  # only the brain not drawn before
    assert len(result.audited) == 3
    assert sorted(p.name for p in (output / "samples").glob("*.nii.gz")) == [
        "brain_000000.nii.gz",
        "brain_000001.nii.gz",
        "brain_000002.nii.gz",
    ]
    card = (output / "samples" / "DATASET_CARD.md").read_text()
    assert "against 40 training images" in card
    assert "No memorisation audit" not in card
    report = json.loads((output / "report.json").read_text())
    assert next(e["file"] for e in sorted(report["audited"], key=lambda e: e["file"])) == "brain_000000.nii.gz"


def test_unreadable_missing_and_off_grid_samples(people, copies, tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    originals = sorted(copies.iterdir())[:3]
    for path in originals[:2]:
        shutil.copy(path, samples / path.name)
    image = nib.load(originals[2])  # the third copy on a larger grid, two voxels more on every side
    padded = np.pad(image.get_fdata(dtype=np.float32), 2)
    affine = image.affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, 2.0)
    nib.save(nib.Nifti1Image(padded, affine), samples / "wider.nii.gz")
    (samples / "broken.nii.gz").write_bytes(gzip.compress(b"not an image"))
    (samples / "covariates.tsv").write_text("id\tseed\nwider\t0\nlost\t1\n")
    result = audit(people["training"], tmp_path / "report", samples=samples)
    assert [p.name for p, _ in result.unreadable] == ["broken.nii.gz"]
    assert "broken.nii.gz" in result.unreadable[0][1]
    assert result.missing == ["lost"]
    wider = next(i for i in result.audited if i.file.name == "wider.nii.gz")
    assert wider.resampled
    assert wider.flagged
    assert result.request.training[wider.nearest["pixel"].index].name == originals[2].name.removeprefix("copy_")
    assert len(result.audited) == 3
    text = (tmp_path / "report" / "report.md").read_text()
    assert "1 unreadable, 1 missing" in text
    assert "1 samples were on another grid and were resampled" in text


def test_audit_command(people, copies, tmp_path):
    command = [sys.executable, "-m", "brainsynth", "audit", "--data", people["training"], "--samples", copies]
    command += ["--output", tmp_path / "report", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "flagged 40 of 40 samples" in done.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1
    assert "never replaces a report" in again.stderr
