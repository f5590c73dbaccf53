"""brainsynth against the authors' own sampler: MONAI GenerativeModels' networks and DDIM scheduler.

This file also runs under MONAI 1.4 in CI (a second environment): the timesteps, the steps and the
sampled bytes must not depend on the installed MONAI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import brainsynth
from brainsynth.config import NoiseSchedule
from brainsynth.loading.presets import UKB_COVARIATES
from brainsynth.sampling.noise import draw_noise
from brainsynth.sampling.reference import reference_sample
from brainsynth.sampling.schedulers import make_scheduler
from brainsynth.sampling.timesteps import TIMESTEP_SPACINGS, inference_timesteps
from tests.conftest import _import_old_classes

#: DDIM timesteps of MONAI GenerativeModels 0.2.3 and MONAI 1.4 (``(arange(n) * (T // n))[::-1]``), 1000 steps.
STORED_LEADING = {
    1: [0],
    3: [666, 333, 0],
    10: [900, 800, 700, 600, 500, 400, 300, 200, 100, 0],
    20: list(range(950, -1, -50)),
    50: list(range(980, -1, -20)),
}


def _authors_scheduler(steps: int):
    """GenerativeModels' own DDIMScheduler, as the bundle configures it."""
    _import_old_classes()
    from generative.networks.schedulers import DDIMScheduler

    scheduler = DDIMScheduler(
        num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0205, clip_sample=False
    )
    scheduler.set_timesteps(num_inference_steps=steps)
    return scheduler


@pytest.mark.parametrize("steps", sorted(STORED_LEADING))
def test_default_ddim_timesteps_are_the_published_ones(steps):
    schedule = NoiseSchedule()
    assert list(make_scheduler("ddim", schedule, steps).timesteps.tolist()) == STORED_LEADING[steps]
    assert list(inference_timesteps(1000, steps)) == STORED_LEADING[steps]
    assert _authors_scheduler(steps).timesteps.tolist() == STORED_LEADING[steps]


@pytest.mark.parametrize("steps", [3, 50])
def test_ddim_matches_the_authors_loop_with_their_networks_and_scheduler(layout_bundle, old_networks, steps):
    """Both bundle layouts, loaded by brainsynth, against the bundle's sampler run with the old classes."""
    model = brainsynth.load_model(layout_bundle)
    covariates = {"sex": "male", "age": 71.0, "ventricular_volume": 60.0, "brain_volume": 1500.0}
    noise = draw_noise(5, (3, 8, 8, 8))
    ours = model.sample(covariates, noise=noise, steps=steps, scheduler="ddim", device="cpu", precision="float32")

    normalised = [
        spec.normalise(1.0 if spec.name == "sex" else value)
        for spec, value in zip(UKB_COVARIATES, covariates.values(), strict=True)
    ]
    conditioning = torch.tensor([[normalised]], dtype=torch.float32)
    old_autoencoder, old_unet = old_networks
    expected = reference_sample(noise[None], old_autoencoder, old_unet, _authors_scheduler(steps), conditioning)

    assert ours.settings["timesteps"] == STORED_LEADING[steps]
    assert ours.settings["timestep_spacing"] == "leading"
    assert np.abs(ours.volumes[0] - expected[0, 0].numpy()).max() < 1e-4


@pytest.mark.parametrize("spacing", sorted(TIMESTEP_SPACINGS))
def test_every_ddim_step_ends_at_the_next_listed_noise_level(spacing):
    """A step from t lands on the noise level of the next timestep the U-Net is evaluated at."""
    solver = make_scheduler("ddim", NoiseSchedule(), 7, spacing)
    listed = [int(t) for t in solver.timesteps]
    alpha_bar = solver.alphas_cumprod
    clean = torch.linspace(-1.0, 1.0, 24).reshape(1, 3, 2, 2, 2)
    epsilon = torch.linspace(1.0, -0.5, 24).reshape(1, 3, 2, 2, 2)
    for i, t in enumerate(listed):
        x_t = alpha_bar[t].sqrt() * clean + (1 - alpha_bar[t]).sqrt() * epsilon
        level = alpha_bar[listed[i + 1]] if i + 1 < len(listed) else torch.tensor(1.0)
        expected = level.sqrt() * clean + (1 - level).sqrt() * epsilon
        torch.testing.assert_close(solver.step(epsilon, t, x_t), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spacing", sorted(TIMESTEP_SPACINGS))
def test_every_ddpm_step_draws_from_the_posterior_at_the_next_listed_level(spacing):
    """DDPM's step from t to s is the posterior q(x_s | x_t, x_0), which is DDIM's step at eta = 1."""
    schedule = NoiseSchedule()
    ddpm, ddim = make_scheduler("ddpm", schedule, 7, spacing), make_scheduler("ddim", schedule, 7, spacing)
    x_t = torch.randn(1, 3, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    for t in ddpm.timesteps.tolist():
        output = torch.sin(3 * x_t + t / 100)
        ours = ddpm.step(output, t, x_t, generator=torch.Generator().manual_seed(t))
        posterior = ddim.step(output, t, x_t, eta=1.0, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(ours, posterior, rtol=1e-4, atol=1e-5)
        x_t = ours


def test_ddpm_over_every_timestep_equals_monai_ddpm():
    from monai.networks.schedulers import DDPMScheduler

    schedule = NoiseSchedule()
    theirs = DDPMScheduler(
        num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015, beta_end=0.0205, clip_sample=False
    )
    theirs.set_timesteps(1000)
    ours = make_scheduler("ddpm", schedule, 1000)
    assert ours.timesteps.tolist() == theirs.timesteps.tolist()
    x_ours = x_theirs = torch.randn(1, 3, 2, 2, 2, generator=torch.Generator().manual_seed(3))
    g_ours, g_theirs = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in ours.timesteps.tolist()[:50] + ours.timesteps.tolist()[-50:]:
        output = torch.sin(3 * x_ours + t / 100)
        x_ours = ours.step(output, t, x_ours, generator=g_ours)
        x_theirs = theirs.step(output, t, x_theirs, generator=g_theirs)[0]
        assert torch.equal(x_ours, x_theirs)


_SAMPLE_SCRIPT = """
import hashlib, json, sys
import brainsynth
model = brainsynth.load_model(sys.argv[1])
out = {}
for scheduler, steps, eta in (("ddim", 5, 0.0), ("ddim", 4, 0.5), ("ddpm", 4, 0.0), ("pndm", 4, 0.0)):
    result = model.sample(seed=11, steps=steps, scheduler=scheduler, eta=eta, device="cpu", precision="float32")
    out[f"{scheduler}-{steps}-{eta}"] = hashlib.sha256(result.volumes.tobytes()).hexdigest()
import monai
out["monai"] = monai.__version__
print(json.dumps(out))
"""


@pytest.mark.skipif(
    not os.environ.get("BRAINSYNTH_COMPARE_PYTHON"),
    reason="set BRAINSYNTH_COMPARE_PYTHON to a Python with another MONAI (CI: MONAI 1.4)",
)
def test_same_seed_same_bytes_under_another_monai(model_dir):
    """The same seed gives the same bytes in this environment and in one with another MONAI version."""
    runs = []
    for python in (sys.executable, os.environ["BRAINSYNTH_COMPARE_PYTHON"]):
        done = subprocess.run(
            [python, "-c", _SAMPLE_SCRIPT, str(model_dir)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    here, there = runs
    assert here.pop("monai") != there.pop("monai"), "the two environments have the same MONAI version"
    assert here == there


def test_v_prediction_step_against_hand_computed_values():
    """The demo model's parametrisation: v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans and Ho 2022)."""
    schedule = NoiseSchedule(prediction_type="v_prediction")
    solver = make_scheduler("ddim", schedule, 4)  # timesteps 750, 500, 250, 0
    a_t, a_s = float(solver.alphas_cumprod[750]), float(solver.alphas_cumprod[500])
    x0, eps = torch.tensor([0.5, -1.0]), torch.tensor([1.5, 0.25])
    x_t = a_t**0.5 * x0 + (1 - a_t) ** 0.5 * eps
    v = a_t**0.5 * eps - (1 - a_t) ** 0.5 * x0
    previous = solver.step(v, 750, x_t)
    clean, _ = solver.clean_and_noise(v, 750, x_t)
    torch.testing.assert_close(clean, x0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(previous, a_s**0.5 * x0 + (1 - a_s) ** 0.5 * eps, rtol=1e-5, atol=1e-6)
    # alpha_bar of the scaled-linear schedule, computed here independently in float64
    betas = np.linspace(0.0015**0.5, 0.0205**0.5, 1000) ** 2
    alpha_bar = np.cumprod(1 - betas)
    assert a_t == pytest.approx(alpha_bar[750], rel=1e-4)
    assert a_s == pytest.approx(alpha_bar[500], rel=1e-4)
