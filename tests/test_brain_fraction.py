"""Brain volume from the calibrated intensity histogram: bias flattening, the stored model, its accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brainsynth.evaluation.bias_field import correct_bias
from brainsynth.evaluation.brain_fraction import CALIBRATION_FILE, EDGES, Calibration, load_calibration
from brainsynth.evaluation.volumetry import find_regions
from brainsynth.synthetic.anatomy import cohort_grid, draw_subject, synthesize_subject


@pytest.fixture(scope="module")
def subject():
    return synthesize_subject(draw_subject(np.random.default_rng(5)), cohort_grid(2.0))


def test_bias_correction_flattens_a_smooth_field(subject):
    image = subject["t1"]
    grid = cohort_grid(2.0)
    x = grid.world()[0]
    field = np.exp(0.25 * x / np.abs(x).max())  # +-25 % left to right in log intensity
    biased = image * field
    brain, _ = find_regions(biased, grid.affine)
    white = brain & (subject["wm"] > 0.95)
    left, right = white & (x < -20), white & (x > 20)

    def ratio(volume):
        return float(np.median(volume[right]) / np.median(volume[left]))

    assert ratio(biased) > 1.2  # the field is there
    corrected = correct_bias(biased, brain, grid.spacing)
    assert abs(ratio(corrected) - 1.0) < 0.05
    assert np.all(corrected[~brain] == 0)


def test_shipped_calibration_reads_back_and_records_its_fit(tmp_path):
    calibration = load_calibration()
    assert calibration.spacing_mm == 2.0
    assert calibration.coefficients.shape == calibration.mean.shape == (len(EDGES) - 1 + 2,)
    fit = calibration.fit
    assert fit["held_out"]["pearson_r"] >= 0.95
    assert fit["training"]["seed"] != fit["held_out"]["seed"]
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(calibration.to_dict()))
    again = load_calibration(path)
    features = np.random.default_rng(0).random((3, len(calibration.mean)))
    assert np.allclose(again.predict(features), calibration.predict(features))


def test_calibration_with_other_bins_is_refused(tmp_path):
    data = json.loads(CALIBRATION_FILE.read_text())
    data["edges"] = np.linspace(0, 1, 37).tolist()
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="other histogram bins"):
        load_calibration(path)


def test_prediction_is_the_linear_model():
    calibration = Calibration(2.0, np.array([1.0, 2.0]), np.array([2.0, 4.0]), np.array([0.5, -1.0]), 0.3, {})
    assert calibration.predict(np.array([3.0, 6.0])) == pytest.approx(0.3 + 0.5 * 1.0 - 1.0 * 1.0)
