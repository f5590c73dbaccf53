"""brainsynth: explore 3D brain-MRI latent diffusion models.

Load a model, sample brains conditioned on sex, age, ventricular volume and brain volume in real
units, and save them as NIfTI with full provenance.

Examples
--------
>>> import brainsynth
>>> model = brainsynth.load_model("ukb")  # doctest: +SKIP
>>> result = model.sample(sex="male", age=70, seed=0)  # doctest: +SKIP
>>> result.save("brain.nii.gz")  # doctest: +SKIP
"""

from brainsynth._version import __version__
from brainsynth.config import ModelConfig, NoiseSchedule
from brainsynth.covariates import CovariateSpec
from brainsynth.errors import (
    BrainsynthError,
    ChecksumError,
    DeviceUnavailableError,
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    NonFiniteResultError,
    OutputExistsError,
    SamplingCancelled,
)
from brainsynth.loading.model_dir import save_model_dir
from brainsynth.loading.names import load_model
from brainsynth.model import LatentDiffusionModel
from brainsynth.progress import Cancellation, WorkProgress
from brainsynth.result import SampleResult
from brainsynth.sampling.loop import ProgressCallback, StepProgress

_LAZY = dict.fromkeys(("RegistrationError", "Scan", "load_scan", "scan_from_image"), "brainsynth.scans.scan")


def __getattr__(name: str):
    """Names whose modules need an extra (``[scans]``) are imported when first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'brainsynth' has no attribute {name!r}")


__all__ = [
    "BrainsynthError",
    "Cancellation",
    "ChecksumError",
    "CovariateSpec",
    "DeviceUnavailableError",
    "InvalidParameterError",
    "LatentDiffusionModel",
    "ModelConfig",
    "ModelLoadError",
    "ModelNotFoundError",
    "NoiseSchedule",
    "NonFiniteResultError",
    "OutputExistsError",
    "ProgressCallback",
    "RegistrationError",
    "SampleResult",
    "SamplingCancelled",
    "Scan",
    "StepProgress",
    "WorkProgress",
    "__version__",
    "load_model",
    "load_scan",
    "save_model_dir",
    "scan_from_image",
]
