"""Golden outputs: what fixed seeds give through every public entry point, stored to keep them unchanged.

:func:`outputs` computes each case (tiny random models and the packaged demo model; DDIM, DDPM, DPM-Solver++,
guidance, traversal, interpolation, batches, split decoding, a generated dataset); ``tests/golden.json``
holds a fingerprint of each (shape, mean, standard deviation and 64 voxels on a regular grid), and
``tests/test_golden.py`` compares. ``python -m tests.golden`` rewrites the file; ``python -m tests.golden
--save FOLDER`` keeps the full arrays, to compare a refactor byte for byte on one machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

STORED = Path(__file__).with_name("golden.json")


def _tiny():
    from tests.tiny import tiny_model

    return tiny_model()


def _guided():
    from tests.tiny import tiny_model

    return tiny_model(null_condition=0.0)


def _demo():
    import brainsynth

    return brainsynth.load_model("demo")


def _split(model):
    model.decoding = "split"
    return model


def _generated(model) -> np.ndarray:
    from brainsynth.generate import generate_dataset

    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "wanted.tsv"
        table.write_text("id\tsex\tage\tseed\na\tfemale\t50\t3\nb\tmale\t75\t4\n")
        generate_dataset(model, Path(folder) / "out", covariates=table, steps=3, batch_size=2)
        return np.stack([np.asarray(nib.load(Path(folder) / "out" / f"{i}.nii.gz").dataobj) for i in "ab"])


CASES: dict[str, tuple[Callable[[], object], Callable[[object], np.ndarray]]] = {
    "tiny ddim": (_tiny, lambda m: m.sample(seed=1, steps=5, age=70, sex="male").volumes),
    "tiny ddim eta": (_tiny, lambda m: m.sample(seed=2, steps=4, eta=0.5).volumes),
    "tiny ddpm batch": (_tiny, lambda m: m.sample(seed=3, steps=4, scheduler="ddpm", batch_size=2).volumes),
    "tiny dpm-solver++": (_tiny, lambda m: m.sample(seed=4, steps=5, scheduler="dpm-solver++").volumes),
    "tiny trailing": (_tiny, lambda m: m.sample(seed=5, steps=5, timestep_spacing="trailing").volumes),
    "tiny latents": (_tiny, lambda m: m.sample(seed=6, steps=3).latents),
    "tiny traverse": (_tiny, lambda m: m.traverse("age", [50, 80], seed=7, steps=3, batch_size=2).volumes),
    "tiny interpolate": (_tiny, lambda m: m.interpolate(1, 2, 3, steps=3).volumes),
    "tiny split decoding": (lambda: _tiny(), lambda m: _split(m).sample(seed=8, steps=3).volumes),
    "tiny generate": (_tiny, _generated),
    # float32: bfloat16 kernels differ between CPU kinds (AMX or AVX-512 BF16) beyond the tolerance
    "demo float32": (_demo, lambda m: m.sample(seed=1, steps=10, precision="float32").volumes),
    "demo traverse float32": (
        _demo,
        lambda m: m.traverse("ventricular_volume", [20, 120], seed=2, steps=10, precision="float32").volumes,
    ),
    "tiny guidance": (_guided, lambda m: m.sample(seed=9, steps=4, guidance=3.0, age=75).volumes),
}


def fingerprint(array: np.ndarray) -> dict:
    """Shape, mean, standard deviation and 64 values on a regular grid of the array's last three axes."""
    array = np.asarray(array, dtype=np.float64)
    grids = [np.linspace(0, n - 1, 4).round().astype(int) for n in array.shape[-3:]]
    picked = array[(..., *np.ix_(*grids))]
    return {
        "shape": list(array.shape),
        "mean": float(array.mean()),
        "std": float(array.std()),
        "values": [round(float(v), 7) for v in picked.ravel()],
    }


def outputs(names=None) -> dict[str, np.ndarray]:
    """Compute the named cases (all by default)."""
    models: dict = {}
    result = {}
    for name in names or CASES:
        make, run = CASES[name]
        model = models.setdefault(make, make())
        result[name] = np.asarray(run(model))
    return result


if __name__ == "__main__":  # pragma: no cover - rewrites the stored fingerprints or saves full arrays
    computed = outputs()
    if len(sys.argv) == 3 and sys.argv[1] == "--save":
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in computed.items():
            np.save(folder / f"{name.replace(' ', '_')}.npy", array)
    else:
        STORED.write_text(json.dumps({k: fingerprint(v) for k, v in computed.items()}, indent=1) + "\n")
