"""Sampling, traversal and interpolation with a tiny random model on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import brainsynth
from brainsynth.sampling.loop import StepProgress
from brainsynth.sampling.noise import draw_noise, slerp


def test_sample_returns_volume_affine_covariates_and_settings(model):
    result = model.sample(sex="male", age=70, seed=3, steps=4)
    assert isinstance(result, brainsynth.SampleResult)
    assert result.volumes.shape == (1, 16, 16, 16)
    assert result.volumes.dtype == np.float32
    assert result.volume.shape == (16, 16, 16)
    np.testing.assert_array_equal(result.affine, model.config.affine_array)
    assert result.voxel_size == (2.0, 2.0, 2.0)
    assert result.covariates[0]["sex"] == "male"
    assert result.covariates[0]["age"] == 70.0
    assert result.covariates_normalised[0]["age"] == pytest.approx((70 - 44) / 38)
    assert result.seeds == (3,)
    assert result.settings == {
        "steps": 4,
        "scheduler": "ddim",
        "eta": 0.0,
        "device": "cpu",
        "batch_size": 1,
        "precision": "float32",
        "weight_dtype": "float32",
        "guidance": 1.0,
        "decoding": "full",
        "compiled": None,
        "timestep_spacing": "leading",
        "timesteps": [750, 500, 250, 0],
    }
    assert result.provenance["model"] == "tiny"
    assert result.latents.shape == (1, 3, 8, 8, 8)


def test_same_seed_same_brain_other_seed_other_brain(model):
    a = model.sample(seed=11, steps=3).volume
    b = model.sample(seed=11, steps=3).volume
    c = model.sample(seed=12, steps=3).volume
    assert a.tobytes() == b.tobytes()
    assert np.abs(a - c).mean() > 1e-3


def test_random_seed_is_drawn_and_recorded_so_it_replays(model):
    first = model.sample(steps=3)
    (seed,) = first.seeds
    assert isinstance(seed, int)
    np.testing.assert_array_equal(model.sample(seed=seed, steps=3).volume, first.volume)


def test_batch_items_replay_alone(model):
    batch = model.sample(seed=20, batch_size=3, steps=3)
    assert batch.seeds == (20, 21, 22)
    alone = model.sample(seed=21, steps=3)
    np.testing.assert_allclose(batch.volumes[1], alone.volume, atol=1e-5)
    assert len(batch) == 3
    assert batch[2].seeds == (22,)


def test_explicit_noise_equals_seeded_noise(model):
    noise = draw_noise(9, model.config.latent_shape)
    explicit = model.sample(noise=noise, steps=3)
    seeded = model.sample(seed=9, steps=3)
    np.testing.assert_array_equal(explicit.volume, seeded.volume)
    assert explicit.seeds == (None,)
    assert explicit.noise[0]["kind"] == "explicit"


def test_conditioning_changes_the_brain(model):
    young = model.sample(age=45, seed=1, steps=3).volume
    old = model.sample(age=80, seed=1, steps=3).volume
    assert np.abs(young - old).max() > 1e-4


@pytest.mark.parametrize(
    ("scheduler", "steps"), [("ddim", 5), ("ddpm", 5), ("pndm", 5), ("dpm-solver++", 5), ("unipc", 5)]
)
def test_every_scheduler_is_deterministic_per_seed(model, scheduler, steps):
    a = model.sample(seed=4, steps=steps, scheduler=scheduler)
    b = model.sample(seed=4, steps=steps, scheduler=scheduler)
    assert a.settings["scheduler"] == scheduler
    assert np.isfinite(a.volume).all()
    np.testing.assert_array_equal(a.volume, b.volume)
    other = "ddpm" if scheduler == "ddim" else "ddim"  # the scheduler asked for is the one that ran
    assert not np.allclose(a.latents, model.sample(seed=4, steps=steps, scheduler=other).latents)


def test_stochastic_items_do_not_depend_on_the_batch(model):
    batch = model.sample(seed=30, batch_size=2, steps=4, scheduler="ddpm")
    alone = model.sample(seed=31, steps=4, scheduler="ddpm")
    np.testing.assert_allclose(batch.volumes[1], alone.volume, atol=1e-5)
    eta = model.sample(seed=30, steps=4, eta=0.5)
    assert not np.allclose(eta.volume, model.sample(seed=30, steps=4).volume)


def test_callback_sees_every_step_with_latent_and_prediction(model):
    seen: list[StepProgress] = []
    model.sample(seed=2, steps=6, callback=seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5, 6]
    assert {p.total for p in seen} == {6}
    assert seen[0].timestep > seen[-1].timestep == 0
    assert seen[0].latent.shape == seen[0].predicted_clean.shape == (1, 3, 8, 8, 8)


def test_cancel_stops_at_the_next_step(model):
    steps_done = []

    def cancel_at_three(progress):
        steps_done.append(progress.step)
        if progress.step == 3:
            raise brainsynth.SamplingCancelled("stop")

    with pytest.raises(brainsynth.SamplingCancelled):
        model.sample(seed=2, steps=10, callback=cancel_at_three)
    assert steps_done == [1, 2, 3]


def test_traverse_sweeps_one_covariate_with_the_same_noise(model):
    seen = []
    result = model.traverse("age", [50, 60, 70], seed=5, steps=3, sex="male", batch_size=2, callback=seen.append)
    assert len(result) == 3
    assert [c["age"] for c in result.covariates] == [50.0, 60.0, 70.0]
    assert {c["sex"] for c in result.covariates} == {"male"}
    assert result.seeds == (5, 5, 5)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5, 6]
    single = model.sample(age=60, sex="male", seed=5, steps=3)
    np.testing.assert_allclose(result.volumes[1], single.volume, atol=1e-5)


def test_interpolation_ends_at_both_seeds(model):
    result = model.interpolate(1, 2, 4, steps=3, covariates_a={"age": 50}, covariates_b={"age": 80})
    assert len(result) == 4
    assert [round(c["age"], 6) for c in result.covariates] == [50.0, 60.0, 70.0, 80.0]
    np.testing.assert_allclose(result.volumes[0], model.sample(seed=1, age=50, steps=3).volume, atol=1e-5)
    np.testing.assert_allclose(result.volumes[-1], model.sample(seed=2, age=80, steps=3).volume, atol=1e-5)
    assert result.noise[1] == {"kind": "slerp", "seed_a": 1, "seed_b": 2, "t": pytest.approx(1 / 3)}


def test_slerp_keeps_the_noise_norm():
    a, b = draw_noise(1, (3, 8, 8, 8)), draw_noise(2, (3, 8, 8, 8))
    middle = slerp(a, b, 0.5)
    assert middle.norm() == pytest.approx(float((a.norm() + b.norm()) / 2), rel=0.05)
    assert torch.equal(slerp(a, b, 0.0), a)


def test_regression_short_ddim_loop_against_stored_values(model):
    """Stored from this tiny model (torch seed 0) so changes to the sampling loop are noticed (DDIM on the
    published "leading" timesteps 800, 600, 400, 200, 0)."""
    result = model.sample(seed=123, steps=5, sex="female", age=60)
    latent = result.latents[0]
    assert float(latent.mean()) == pytest.approx(STORED_LATENT_MEAN, rel=1e-4)
    assert float(latent.std()) == pytest.approx(STORED_LATENT_STD, rel=1e-4)
    np.testing.assert_allclose(latent[:, 0, 0, 0], STORED_LATENT_CORNER, rtol=1e-4)


STORED_LATENT_MEAN = 0.09248427301645279
STORED_LATENT_STD = 17.218990325927734
STORED_LATENT_CORNER = [6.249740123748779, -21.695404052734375, 7.955367565155029]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, r"steps must be between 1 and 1000 \(got 0\)"),
        ({"steps": 2.5}, r"steps must be an integer \(got 2.5\)"),
        ({"seed": -1}, r"seed must be between 0 and 2\*\*63-1 \(got -1\)"),
        ({"seed": "abc"}, r"seed must be an integer"),
        ({"scheduler": "euler"}, r"scheduler must be one of ddim, ddpm, pndm, dpm-solver\+\+, unipc \(got 'euler'\)"),
        ({"eta": 2.0}, r"eta must be a number between 0 and 1 \(got 2.0\)"),
        ({"eta": 0.5, "scheduler": "pndm"}, r"eta applies to the ddim scheduler only"),
        ({"timestep_spacing": "even"}, r"timestep_spacing must be one of leading, linspace, trailing \(got 'even'\)"),
        (
            {"timestep_spacing": "linspace", "scheduler": "dpm-solver++"},
            r"timestep_spacing applies to the ddim and ddpm schedulers only; dpm-solver\+\+ lists its own",
        ),
        ({"batch_size": 0}, r"batch_size must be a positive integer \(got 0\)"),
        ({"precision": "int8"}, r"precision must be one of float32, bfloat16, float16 or auto \(got 'int8'\)"),
        ({"precision": "float16", "device": "cpu"}, r"precision float16 needs a GPU; use bfloat16 on the CPU"),
        ({"device": "tpu"}, r"device must be one of auto, cpu, cuda, mps or cuda:N \(got 'tpu'\)"),
        ({"noise": torch.zeros(3, 4, 4, 4)}, r"noise must have shape \(3, 8, 8, 8\)"),
        ({"noise": torch.full((3, 8, 8, 8), float("nan"))}, r"noise must be finite"),
        ({"age": 200}, r"age must be between 44 and 82 years \(got 200\)"),
    ],
)
def test_bad_sampling_input_is_refused_before_compute(model, kwargs, message):
    calls = []
    with pytest.raises(brainsynth.InvalidParameterError, match=message):
        model.sample(callback=calls.append, **kwargs)
    assert calls == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_requested_where_none_exists(model):
    with pytest.raises(brainsynth.DeviceUnavailableError, match=r"device 'cuda' was requested but no CUDA GPU"):
        model.sample(device="cuda")


def test_traverse_and_interpolate_validate_their_own_arguments(model):
    with pytest.raises(brainsynth.InvalidParameterError, match=r"covariate must be one of sex, age"):
        model.traverse("height", [1, 2])
    with pytest.raises(brainsynth.InvalidParameterError, match=r"values must be a non-empty sequence"):
        model.traverse("age", [])
    with pytest.raises(brainsynth.InvalidParameterError, match=r"age is swept by values"):
        model.traverse("age", [50], age=60)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"frames must be an integer of at least 2 \(got 1\)"):
        model.interpolate(1, 2, 1)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"seed_b must be between 0 and 2\*\*63-1"):
        model.interpolate(1, -2, 3)


def test_solvers_agree_at_many_steps(model):
    """Every deterministic solver approximates the same ODE; with many steps they meet."""
    reference = model.sample(seed=6, steps=1000, scheduler="ddim").volume
    for scheduler in ("dpm-solver++", "unipc"):
        many = model.sample(seed=6, steps=250, scheduler=scheduler).volume
        assert np.abs(many - reference).max() < 2e-3, scheduler
    few = model.sample(seed=6, steps=20, scheduler="dpm-solver++").volume
    ddim_few = model.sample(seed=6, steps=20, scheduler="ddim").volume
    assert np.abs(few - reference).mean() < np.abs(ddim_few - reference).mean()


def test_bfloat16_autocast_stays_close_to_float32(model):
    exact = model.sample(seed=8, steps=5)
    fast = model.sample(seed=8, steps=5, precision="bfloat16")
    assert fast.settings["precision"] == "bfloat16"
    assert fast.volume.dtype == np.float32
    assert np.abs(fast.volume - exact.volume).mean() < 0.05
    assert not np.array_equal(fast.volume, exact.volume)


def test_compiled_unet_gives_the_same_brain(model):
    eager = model.sample(seed=4, steps=3)
    model.compile(backend="aot_eager")
    compiled = model.sample(seed=4, steps=3)
    assert compiled.settings["compiled"] == {"backend": "aot_eager"}
    assert set(model.unet.state_dict()) == set(type(model.unet)(**model.config.unet).state_dict())
    np.testing.assert_allclose(compiled.volume, eager.volume, atol=1e-5)


def test_bfloat16_weights_sample_like_bfloat16_autocast(model):
    reference = model.sample(seed=2, steps=3, precision="bfloat16")
    model.set_weight_dtype("bfloat16")
    assert model.weight_dtype == "bfloat16"
    with pytest.raises(brainsynth.InvalidParameterError, match="stored in bfloat16: sample with precision 'bfloat16'"):
        model.sample(seed=2, steps=3, precision="float32")
    assert model.sample(seed=2, steps=1).settings["precision"] == "bfloat16"  # the weights' type by default
    halved = model.sample(seed=2, steps=3, precision="bfloat16")
    assert halved.settings["weight_dtype"] == "bfloat16"
    assert float(np.abs(halved.volume - reference.volume).mean()) < 0.05 * float(np.abs(reference.volume).mean())
    with pytest.raises(brainsynth.InvalidParameterError, match="weight dtype must be one of"):
        model.set_weight_dtype("int8")


def test_decode_takes_every_sampling_precision_and_checks_its_input(model):
    latents = torch.randn(2, *model.config.latent_shape)
    assert model.decode(latents, precision="auto").shape == (2, 16, 16, 16)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"precision must be one of .* \(got 'int8'\)"):
        model.decode(latents, precision="int8")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"latents must be a tensor of shape \(B, 3, 8, 8, 8\)"):
        model.decode(latents[0])
