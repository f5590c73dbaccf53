"""Brains per second of ``generate`` writing in the sampling loop (the old serial way) and in background
threads, the share of the time the sampler waits on writing, and each output type's size and cost.

    python recipes/measure/generate_speed.py [--model demo] [--n 12] [--batch-size 1] [--json OUT]

Both ways generate the same rows into fresh folders after one warm-up brain. The write cost of a
brain on the published grid (160 x 224 x 160 at 1 mm: Colin27 from Debian's mricron-data, cropped)
is measured too, since a GPU that samples several brains a second would wait on that.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

import brainsynth
from brainsynth.files.nifti import OUTPUT_DTYPES, nifti_bytes, to_dtype
from brainsynth.generate import generate_dataset

COLIN = Path("/usr/share/mricron/templates/ch2.nii.gz")
PUBLISHED_SHAPE = (160, 224, 160)


def _write_cost(volume: np.ndarray, dtype: str, repeats: int = 3) -> dict[str, float]:
    started = time.perf_counter()
    for _ in range(repeats):
        data = nifti_bytes(to_dtype(volume, dtype), np.eye(4), gzipped=True)
    return {"seconds": round((time.perf_counter() - started) / repeats, 3), "megabytes": round(len(data) / 1e6, 2)}


def _published_volume() -> np.ndarray | None:
    if not COLIN.is_file():
        return None
    volume = nib.load(COLIN).get_fdata(dtype=np.float32)
    out = np.zeros(PUBLISHED_SHAPE, dtype=np.float32)
    pairs = list(zip(volume.shape, PUBLISHED_SHAPE, strict=True))
    src = tuple(slice(max(0, (s - t) // 2), max(0, (s - t) // 2) + min(s, t)) for s, t in pairs)
    dst = tuple(slice(max(0, (t - s) // 2), max(0, (t - s) // 2) + min(s, t)) for s, t in pairs)
    out[dst] = volume[src]
    return np.clip(out / np.percentile(out[out > 0], 99.5), 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    model = brainsynth.load_model(args.model)
    report: dict = {"model": args.model, "n": args.n, "batch_size": args.batch_size, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        generate_dataset(model, Path(folder) / "warm-up", n=1, card=False)
        for writers in (0, 2):
            for dtype in ("float32", "uint8"):
                target = Path(folder) / f"w{writers}-{dtype}"
                started = time.perf_counter()
                counts = generate_dataset(
                    model, target, n=args.n, batch_size=args.batch_size, writers=writers, dtype=dtype, card=False
                )
                seconds = time.perf_counter() - started
                run = {
                    "writers": writers,
                    "dtype": dtype,
                    "seconds": round(seconds, 1),
                    "brains_per_s": round(args.n / seconds, 3),
                    "sampler_waited_s": counts["sampler_waited_s"],
                    "waiting_share": round(counts["sampler_waited_s"] / seconds, 3),
                }
                report["runs"].append(run)
                print(json.dumps(run), flush=True)
        brain = model.sample(seed=0).volume
    report["write_cost"] = {"model_grid": {d: _write_cost(brain, d) for d in OUTPUT_DTYPES}}
    published = _published_volume()
    if published is not None:
        report["write_cost"]["published_grid"] = {d: _write_cost(published, d) for d in OUTPUT_DTYPES}
    print(json.dumps(report["write_cost"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
