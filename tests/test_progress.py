"""One progress and cancel contract: datasets, cohorts and evaluations report and stop like sampling."""

from __future__ import annotations

import numpy as np
import pytest

import brainsynth
from brainsynth.errors import SamplingCancelled
from brainsynth.evaluation.report import evaluate_model
from brainsynth.files.nifti import load_nifti
from brainsynth.generate import generate_dataset
from brainsynth.progress import Cancellation, WorkProgress
from brainsynth.sampling.loop import StepProgress
from brainsynth.sampling.stepping import iterate_steps
from brainsynth.synthetic.cohort import generate_cohort


def _counts(counts: dict) -> dict:
    """The row counts of a generate_dataset summary (without its timing)."""
    return {k: counts[k] for k in ("written", "skipped", "total")}


def _written(folder):
    return sorted(p.name for p in folder.glob("*.nii.gz"))


def test_a_dataset_reports_every_step_and_brain_and_resumes_after_a_cancel(model, tmp_path):
    seen: list[WorkProgress] = []

    def stop_in_the_third_brain(progress: WorkProgress) -> None:
        seen.append(progress)
        if progress.done == 2 and progress.step is not None and progress.step.step == 2:
            raise SamplingCancelled("cancelled")

    out = tmp_path / "out"
    with pytest.raises(SamplingCancelled):
        generate_dataset(model, out, n=4, seed=5, steps=3, callback=stop_in_the_third_brain)
    assert _written(out) == ["brain_000000.nii.gz", "brain_000001.nii.gz"]  # the brain in progress is not written
    assert all(p.unit == "brain" and p.total == 4 for p in seen)
    steps = [(p.done, p.step.step) for p in seen if p.step is not None]
    assert steps == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    assert [p.done for p in seen if p.step is None] == [1, 2]
    assert isinstance(seen[0].step, StepProgress)

    again: list[WorkProgress] = []
    counts = generate_dataset(model, out, n=4, seed=5, steps=3, callback=again.append)
    assert _counts(counts) == {"written": 2, "skipped": 2, "total": 4}
    assert [p.done for p in again if p.step is None] == [1, 2]
    whole = tmp_path / "whole"
    generate_dataset(model, whole, n=4, seed=5, steps=3)
    assert _written(out) == _written(whole)
    for name in _written(whole):
        np.testing.assert_array_equal(load_nifti(out / name)[0], load_nifti(whole / name)[0])


def test_closing_the_generator_of_a_dataset_cancels_it(model, tmp_path):
    out = tmp_path / "out"
    steps = iterate_steps(generate_dataset, model, out, n=3, seed=1, steps=4)
    first = next(steps)
    assert isinstance(first, WorkProgress)
    assert first.step.step == 1
    steps.close()
    assert _written(out) == []


def test_a_cohort_reports_each_subject_and_a_cancel_leaves_nothing(tmp_path):
    seen: list[WorkProgress] = []
    folder = generate_cohort(3, tmp_path / "cohort", spacing=8.0, seed=2, callback=seen.append)
    assert [(p.done, p.total, p.unit) for p in seen] == [(1, 3, "subject"), (2, 3, "subject"), (3, 3, "subject")]
    assert folder.is_dir()
    switch = Cancellation()

    def cancel_after_two(progress: WorkProgress) -> None:
        if progress.done == 2:
            switch.cancel()

    with pytest.raises(SamplingCancelled):
        generate_cohort(3, tmp_path / "cancelled", spacing=8.0, seed=2, callback=switch.watch(cancel_after_two))
    assert not (tmp_path / "cancelled").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]


def test_an_evaluation_reports_its_stages_and_steps_and_a_cancel_writes_no_report(trained_model, tmp_path):
    model = brainsynth.load_model(trained_model)
    seen: list[WorkProgress] = []

    def stop_in_diversity(progress: WorkProgress) -> None:
        seen.append(progress)
        if progress.message == "diversity" and progress.step is not None:
            raise SamplingCancelled("cancelled")

    with pytest.raises(SamplingCancelled):
        evaluate_model(model, tmp_path / "report", n=2, device="cpu", callback=stop_in_diversity)
    assert not (tmp_path / "report" / "report.md").exists()
    stages = [p.message for p in seen if p.step is None]
    assert stages == ["reading held-out images", "reconstruction", "denoising by noise level", "diversity"]
    assert [p.done for p in seen if p.step is None] == [0, 1, 2, 3]
    assert {p.total for p in seen} == {9}  # five stages, measuring the samples, two fidelities, writing
    assert seen[-1].step.step == 1
