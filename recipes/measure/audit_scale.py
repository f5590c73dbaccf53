"""The memorisation audit at the demo model's scale: 1,000 samples against its 300 training images.

    python recipes/measure/audit_scale.py WORK_DIR [--samples 200] [--held-out 100] [--copies 700]

In WORK_DIR (each step is kept, so a second run continues): the demo model's training cohort
(``brainsynth cohort --n 300 --spacing 2 --seed 0``), 100 people it never saw (seed 1), the demo
model's own samples, and slightly changed copies of training images (moved by up to a voxel per axis,
intensity rescaled, noise of 2 % added). All of them are audited in one run, so that the report gives
the time for 1,000 samples and, file by file, the share flagged of each kind: the demo model's
samples, the unseen people (the false-positive rate) and the copies (the catch rate).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np

import brainsynth
from brainsynth.audit import audit
from brainsynth.generate import generate_dataset
from brainsynth.synthetic.cohort import generate_cohort


def _copies(training: list[Path], folder: Path, count: int) -> None:
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for number in range(count):
        path = training[number % len(training)]
        target = folder / f"copy{number:04d}_{path.name}"
        shift = tuple(int(s) for s in rng.integers(-1, 2, 3))
        gain, offset = rng.uniform(0.9, 1.1), rng.uniform(-0.03, 0.03)
        if target.exists():
            continue
        image = nib.load(path)
        volume = np.roll(image.get_fdata(dtype=np.float32), shift, axis=(0, 1, 2)) * gain + offset
        volume += rng.normal(0, 0.02, volume.shape).astype(np.float32)
        nib.save(nib.Nifti1Image(volume.astype(np.float32), image.affine), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--copies", type=int, default=700)
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "training").exists():
        generate_cohort(300, work / "training", spacing=2.0, seed=0)
    if not (work / "unseen").exists():
        generate_cohort(args.held_out, work / "unseen", spacing=2.0, seed=1)
    model = brainsynth.load_model("demo")
    audited = work / "audited"
    audited.mkdir(exist_ok=True)
    drawn = work / "demo-samples"
    generate_dataset(model, drawn, n=args.samples, seed=1000)
    for path in sorted(drawn.glob("*.nii.gz")):
        link = audited / f"demo_{path.name}"
        if not link.exists():
            os.symlink(path, link)
    for path in sorted((work / "unseen").glob("sub-*/anat/*.nii.gz")):
        link = audited / f"unseen_{path.name}"
        if not link.exists():
            os.symlink(path, link)
    _copies(sorted((work / "training").glob("sub-*/anat/*.nii.gz")), audited, args.copies)
    report = work / f"report-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    result = audit(work / "training", report, samples=audited, model=model)
    seconds = time.perf_counter() - started
    kinds: dict[str, list[bool]] = {}
    for image in result.audited:
        kinds.setdefault(image.file.name.split("_")[0].rstrip("0123456789"), []).append(image.flagged)
    summary = {
        "audited": len(result.audited),
        "training_images": len(result.request.training),
        "seconds": round(seconds, 1),
        "phases_s": {k: round(v, 1) for k, v in result.seconds.items()},
        "thresholds": result.thresholds,
        "flagged_share": {k: round(sum(v) / len(v), 4) for k, v in kinds.items()},
        "counts": {k: len(v) for k, v in kinds.items()},
        "report": str(report),
    }
    print(json.dumps(summary, indent=1))
    (report / "scale.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
