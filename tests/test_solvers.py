"""The solver protocol: every registered solver drives the one denoising loop, and a new one is one spec."""

from __future__ import annotations

import inspect

import pytest
import torch

from brainsynth.config import NoiseSchedule
from brainsynth.sampling.schedulers import SCHEDULERS, make_scheduler
from brainsynth.sampling.solvers.base import Solver, SolverSpec, training_noise
from brainsynth.sampling.solvers.ddim import DDIM
from tests.tiny import tiny_model

_PROTOCOL = {name for name, _ in inspect.getmembers(Solver) if not name.startswith("_")}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_registered_solver_has_the_protocol_and_steps_to_the_next_latent(name):
    solver = make_scheduler(name, NoiseSchedule(), 5)
    assert set(dir(solver)) >= _PROTOCOL
    timesteps = [int(t) for t in solver.timesteps]
    assert timesteps == sorted(timesteps, reverse=True)
    assert len(set(timesteps)) == len(timesteps)
    assert torch.equal(solver.alphas_cumprod, training_noise(NoiseSchedule()).alphas_cumprod.to(solver.alphas_cumprod))
    x_t = torch.randn(1, 3, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    output = torch.sin(x_t)
    previous = solver.step(output, timesteps[0], x_t, eta=0.0, generator=torch.Generator().manual_seed(1))
    assert isinstance(previous, torch.Tensor)
    assert previous.shape == x_t.shape
    assert not torch.equal(previous, x_t)


class HalfwayDDIM(DDIM):
    """A solver the registry has never seen: DDIM whose every step keeps half of the current latent."""

    def step(self, model_output, timestep, sample, *, eta=0.0, generator=None):
        return 0.5 * (super().step(model_output, timestep, sample) + sample)


def test_a_new_solver_is_one_spec_and_samples_through_every_entry_point(monkeypatch):
    spec = SolverSpec("halfway", "half DDIM steps, for this test", HalfwayDDIM, spacings=None)
    monkeypatch.setitem(SCHEDULERS, "halfway", spec)
    model = tiny_model()
    new = model.sample(seed=3, steps=3, scheduler="halfway", device="cpu")
    ddim = model.sample(seed=3, steps=3, scheduler="ddim", device="cpu")
    assert new.settings["scheduler"] == "halfway"
    assert new.settings["timestep_spacing"] == "leading"
    assert abs(new.latents - ddim.latents).max() > 1e-3
    frames = model.traverse("age", [50, 70], seed=3, steps=3, scheduler="halfway", device="cpu")
    assert frames.volumes.shape[0] == 2


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_inversion_is_exact_when_the_network_knows_the_answer(prediction_type):
    """With a network that returns the true output at each sample's own level, inverting n steps lands
    exactly on the noised latent the sampler starts from, for both prediction types that invert."""
    solver = make_scheduler("ddim", NoiseSchedule(prediction_type=prediction_type), 6)
    clean = torch.linspace(-1.0, 1.0, 24).reshape(1, 3, 2, 2, 2)
    noise = torch.linspace(1.0, -0.5, 24).reshape(1, 3, 2, 2, 2)

    def truth(alpha):
        if prediction_type == "epsilon":
            return noise
        return alpha**0.5 * noise - (1 - alpha) ** 0.5 * clean

    x = clean
    for t in reversed(solver.timesteps.tolist()):
        x = solver.invert(truth(solver.alpha_bar(solver.previous_timestep(t))), t, x)
    top = solver.alphas_cumprod[int(solver.timesteps[0])]
    torch.testing.assert_close(x, top**0.5 * clean + (1 - top) ** 0.5 * noise, rtol=1e-5, atol=1e-5)
