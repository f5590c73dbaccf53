"""Measure editing a real scan with the demo model on this machine: registration, round trip, edit time.

    python recipes/measure/scan_edits.py [OUT.json]

Colin27 (Debian's mricron-data) is registered to the demo model's space; a copy turned by 10 degrees
and moved by 10 mm is registered too, and the recovered move is compared with the true one. Then the
autoencoder's reconstruction, the inversion round trip at several strengths and step counts, and the
time of one edit against one plain sample, all at the model's default precision on the CPU.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

import brainsynth
from brainsynth.scans.resample import resample
from brainsynth.scans.scan import reference_brain

COLIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
SOURCE = {"sex": "female", "age": 27}


def _moved_copy(folder: Path) -> tuple[Path, np.ndarray]:
    image = nib.load(COLIN)
    angle = np.radians(10.0)
    move = np.eye(4)
    move[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    move[:3, 3] = [10.0 / np.sqrt(2), 10.0 / np.sqrt(2), 0.0]
    data = np.asarray(image.dataobj, dtype=np.float32)
    moved = resample(data, image.affine, data.shape, image.affine, np.linalg.inv(move))
    nib.save(nib.Nifti1Image(moved, image.affine), folder / "moved.nii.gz")
    return folder / "moved.nii.gz", move


def main() -> None:
    model = brainsynth.load_model("demo")
    out: dict = {"machine": platform.processor() or platform.machine()}
    started = time.perf_counter()
    reference_brain(model)
    out["reference_brain_s"] = round(time.perf_counter() - started, 2)
    scan = brainsynth.load_scan(COLIN, model)
    out["registration"] = {"correlation": scan.registration.correlation, "seconds": scan.registration.seconds}
    with tempfile.TemporaryDirectory() as folder:
        path, move = _moved_copy(Path(folder))
        again = brainsynth.load_scan(path, model)
    error = again.registration.model_to_scan @ np.linalg.inv(move @ scan.registration.model_to_scan)
    centre = np.array([0.0, -18.0, 18.0, 1.0])
    out["recovery"] = {
        "rotation_error_deg": float(np.degrees(np.arccos(np.clip((np.trace(error[:3, :3]) - 1) / 2, -1, 1)))),
        "shift_error_mm": float(np.linalg.norm((error @ centre)[:3] - centre[:3])),
        "seconds": again.registration.seconds,
    }
    reconstruction = model.reconstruct(scan, device="cpu")
    out["reconstruction"] = {"psnr_db": reconstruction.psnr_db, "ssim": reconstruction.ssim}
    out["roundtrip"] = []
    for steps in (20, 50):
        for strength in (0.4, 0.6, 0.8, 1.0):
            inversion = model.invert(scan, SOURCE, steps=steps, strength=strength, device="cpu", extrapolate=True)
            out["roundtrip"].append({"steps": steps, "strength": strength, "psnr_db": inversion.roundtrip_psnr_db})
            print(out["roundtrip"][-1], flush=True)
    started = time.perf_counter()
    result = model.edit(scan, source=SOURCE, age=70, ventricular_volume=90, device="cpu", extrapolate=True)
    out["edit_s"] = round(time.perf_counter() - started, 2)
    out["edit_measured"] = {"source": result.measured_source, "edited": result.measured[0]}
    started = time.perf_counter()
    model.sample(seed=0, device="cpu")
    out["sample_s"] = round(time.perf_counter() - started, 2)
    text = json.dumps(out, indent=2)
    print(text)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text + "\n")


if __name__ == "__main__":
    main()
