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
