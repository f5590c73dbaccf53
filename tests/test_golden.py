"""Fixed seeds give the stored outputs through every public entry point (see :mod:`tests.golden`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.golden import CASES, STORED, fingerprint, outputs

STORED_FINGERPRINTS = json.loads(STORED.read_text())


@pytest.fixture(scope="module")
def computed():
    return outputs()


@pytest.mark.parametrize("name", list(CASES))
def test_output_is_unchanged(computed, name):
    now, stored = fingerprint(computed[name]), STORED_FINGERPRINTS[name]
    assert now["shape"] == stored["shape"]
    np.testing.assert_allclose(now["values"], stored["values"], atol=2e-5)
    np.testing.assert_allclose([now["mean"], now["std"]], [stored["mean"], stored["std"]], atol=2e-6)
