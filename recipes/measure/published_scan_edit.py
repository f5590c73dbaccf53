"""Edit a real head scan with the published architecture (random weights) on this machine: each stage's
time and the peak memory, from the API and from the command line.

    python recipes/measure/published_scan_edit.py [--steps N] [--cli] [OUT.json]

The published model makes whole heads in MNI space, so Colin27 with its skull (Debian's mricron-data,
MNI-aligned) is the scan. A model with random weights generates noise, so the template it is
registered to (``reference=``) is Colin27 too, placed with its centre of mass at the centre of the
model's grid (the published affine is not MNI's, and random weights have no space of their own): the
registration then has a real 3D move to find. The numbers are costs only: with random weights the
edited image means nothing. With ``--cli`` the same model is saved as a model folder (bfloat16
weights, about 1.1 GB, in a temporary folder) and ``brainsynth edit`` runs on it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import brainsynth
from brainsynth.evaluation.benchmark import load_benchmark_model

HEAD = Path("/usr/share/mricron/templates/ch2.nii.gz")
SOURCE = {"sex": "female", "age": 63, "ventricular_volume": 30, "brain_volume": 1400}


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _timed(out: dict, name: str, work):
    started = time.perf_counter()
    value = work()
    out[name] = {"seconds": round(time.perf_counter() - started, 2), "peak_rss_gb_so_far": round(_peak_gb(), 2)}
    print(name, out[name], flush=True)
    return value


def _command_line(model, template: Path, steps: int, out: dict) -> None:
    from brainsynth.loading.model_dir import save_model_dir

    with tempfile.TemporaryDirectory() as folder:
        model.set_weight_dtype("bfloat16")
        saved = save_model_dir(model, Path(folder) / "ukb-random")
        source = ",".join(f"{k}={v}" for k, v in SOURCE.items())
        command = [sys.executable, "-m", "brainsynth", "edit", str(HEAD), "--model", str(saved)]
        command += ["--reference", str(template), "--source", source, "--age", "75", "--steps", str(steps), "-q"]
        command += ["-o", str(Path(folder) / "older.nii.gz")]
        started = time.perf_counter()
        process = subprocess.run(command, capture_output=True, text=True, check=False)
        out["cli"] = {
            "returncode": process.returncode,
            "seconds": round(time.perf_counter() - started, 2),
            "stdout": process.stdout.strip().splitlines()[-2:],
            "stderr": process.stderr.strip().splitlines()[-3:],
            "written": sorted(p.name for p in Path(folder).iterdir()),
        }
        print("cli", out["cli"], flush=True)


def _centred_template(model, folder: Path) -> Path:
    """Colin27 with its affine shifted so that its centre of mass is the centre of the model's grid."""
    import nibabel as nib
    from scipy import ndimage

    image = nib.load(HEAD)
    data = np.asarray(image.dataobj, dtype=np.float32)
    centre = image.affine @ np.r_[ndimage.center_of_mass(data > 0.1 * np.percentile(data, 99.5)), 1.0]
    grid = model.config.affine_array @ np.r_[(np.asarray(model.config.image_shape) - 1) / 2.0, 1.0]
    affine = image.affine.copy()
    affine[:3, 3] += (grid - centre)[:3]
    nib.save(nib.Nifti1Image(data, affine), folder / "template.nii.gz")
    return folder / "template.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cli", action="store_true")
    parser.add_argument("output", nargs="?")
    args = parser.parse_args()
    out: dict = {"machine": platform.processor() or platform.machine(), "steps": args.steps}
    model = _timed(out, "build", lambda: load_benchmark_model("ukb", random_weights=True))
    template = _centred_template(model, Path(tempfile.mkdtemp()))
    scan = _timed(out, "load_scan", lambda: brainsynth.load_scan(HEAD, model, reference=template))
    out["registration"] = scan.registration.record()
    reconstruction = _timed(out, "reconstruct", lambda: model.reconstruct(scan, device="cpu"))
    out["reconstruction_shape"] = list(reconstruction.volume.shape)

    def edit():
        return model.edit(scan, source=SOURCE, age=75, steps=args.steps, device="cpu")

    result = _timed(out, "edit", edit)
    on_scan = result.on_scan[0]
    out["edit"].update(
        {
            "precision": result.settings.get("precision"),
            "on_scan_grid_shape": list(on_scan.shape),
            "scan_shape": list(scan.original.shape),
            "finite": bool(np.isfinite(on_scan).all()),
        }
    )
    if args.cli:
        _command_line(model, template, args.steps, out)
    text = json.dumps(out, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
