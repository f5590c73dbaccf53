"""Memorisation audit: is any synthetic brain a copy of a training image?

For every sample, its nearest training images under two criteria of the literature (a pixel-space
correlation on the model's grid, and a correlation of the autoencoder's latents), calibrated on real
images the model did not train on: the thresholds leave a stated share of them above, so a flagged
sample is closer to a training image than real images of other people are.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brainsynth.audit.run import AuditResult, check_request, run_audit
from brainsynth.files.atomic import staged_directory
from brainsynth.progress import WorkCallback

__all__ = ["AuditResult", "audit"]

#: Where the samples drawn in model mode are kept, beside the report folder, until the report is written.
PARTIAL_SUFFIX = ".partial"


def audit(
    data: str | Path,
    output: str | Path,
    *,
    samples: str | Path | None = None,
    model: Any = None,
    n: int | None = None,
    held_out: str | Path | None = None,
    false_positive_rate: float = 0.05,
    criteria: Sequence[str] | None = None,
    candidates: int = 5,
    seed: int = 0,
    batch_size: int = 1,
    device: str = "auto",
    callback: WorkCallback | None = None,
) -> AuditResult:
    """Audit synthetic brains for copies of training images and write a report folder.

    Parameters
    ----------
    data : str or Path
        The training images: a folder searched for NIfTI files (a BIDS-like cohort, or any folder).
    output : str or Path
        The report folder, new (an audit never replaces one): ``report.json`` (every audited image with
        its nearest training image and similarity under each criterion, and ``flagged``),
        ``report.md``, ``similarities.png`` and ``closest.png``.
    samples : str or Path, optional
        A folder of samples (one made by ``generate``, or any NIfTI folder). Files that cannot be read
        are listed in the report and the rest audited; so are brains a ``generate`` folder's record
        lists but does not hold. A folder with a dataset card gets the audit's summary in it.
    model : LatentDiffusionModel, optional
        Its grid is the audit's grid and its autoencoder gives the latent criterion; without one the
        grid is the first training image's and only the pixel criterion is used.
    n : int, optional
        Draw this many samples from ``model`` (instead of ``samples``); they are kept in the report
        folder's ``samples/`` with a dataset card, and an interrupted audit resumes drawing them.
    held_out : str or Path, optional
        Real images not used in training, to calibrate the thresholds. Without them each training
        image is left out in turn and compared with the others.
    false_positive_rate : float
        Share of real unseen images that may be flagged (split evenly between the criteria).
    criteria : sequence of str, optional
        ``"pixel"`` and ``"latent"`` (default: both with a model, pixel alone without).
    candidates : int
        Training images the pixel criterion's first pass keeps per sample.
    seed, batch_size : int
        Of the samples drawn in model mode.
    device : str
        Where the autoencoder (and in model mode the sampler) runs.
    callback : callable, optional
        Called with :class:`~brainsynth.progress.WorkProgress` values.

    Returns
    -------
    AuditResult
        The audited images, thresholds and timings (the report's content).
    """
    from brainsynth.audit.report import summary, write_report
    from brainsynth.dataset_card import record_audit

    request = check_request(
        data,
        output,
        samples=samples,
        model=model,
        n=n,
        held_out=held_out,
        false_positive_rate=false_positive_rate,
        criteria=criteria,
        candidates=candidates,
    )
    if request.n is None:
        with staged_directory(request.output) as folder:
            result = run_audit(request, request.samples, model, device, callback)
            write_report(result, folder)
        record_audit(request.samples, summary(result), request.output)
        return result
    from brainsynth.generate import generate_dataset

    partial = request.output.with_name(request.output.name + PARTIAL_SUFFIX)
    partial.mkdir(exist_ok=True)
    drawn = partial / "samples"
    generate_dataset(model, drawn, n=request.n, seed=seed, batch_size=batch_size, device=device, callback=callback)
    result = run_audit(request, drawn, model, device, callback)
    write_report(result, partial)
    record_audit(drawn, summary(result), request.output)
    partial.rename(request.output)
    result.samples_folder = request.output / "samples"
    return result


def remove_partial(output: str | Path) -> None:
    """Remove the samples an interrupted model-mode audit of ``output`` had drawn."""
    shutil.rmtree(Path(output).with_name(Path(output).name + PARTIAL_SUFFIX), ignore_errors=True)
