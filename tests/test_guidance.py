"""Classifier-free guidance, and fine-tuning a diffusion model from another model's weights."""

from __future__ import annotations

import pytest
import torch

import brainsynth
from brainsynth.config import ModelConfig
from brainsynth.covariates import resolve_covariates
from brainsynth.errors import InvalidParameterError, ModelLoadError
from brainsynth.sampling.loop import conditioning_inputs
from brainsynth.sampling.noise import draw_noise
from brainsynth.sampling.schedulers import make_scheduler
from brainsynth.training import load_training_config, train_diffusion
from tests.conftest import write_training_config
from tests.tiny import tiny_config, tiny_model


def test_guided_step_mixes_the_conditional_and_unconditional_predictions():
    model = tiny_model(null_condition=-1.0)
    noise = draw_noise(4, model.config.latent_shape)[None]
    result = model.sample({"age": 70}, noise=noise, steps=1, device="cpu", guidance=3.0)

    covariates = torch.tensor([resolve_covariates(model.config.covariates, {"age": 70}).normalised])
    scheduler = make_scheduler("ddim", model.config.noise_schedule, 1)
    t = int(scheduler.timesteps[0])
    outputs = []
    for values in (covariates, torch.full_like(covariates, -1.0)):
        concat, context = conditioning_inputs(values, noise.shape[1:], model.config.conditioning)
        with torch.no_grad():
            outputs.append(model.unet(torch.cat((noise, concat), 1), timesteps=torch.tensor([t]), context=context))
    conditional, unconditional = outputs
    guided = unconditional + 3.0 * (conditional - unconditional)
    expected = scheduler.step(guided, t, noise)
    assert torch.allclose(torch.from_numpy(result.latents), expected, atol=1e-5)
    assert result.settings["guidance"] == 3.0
    plain = model.sample({"age": 70}, noise=noise, steps=1, device="cpu")
    assert plain.settings["guidance"] == 1.0
    assert abs(plain.latents - result.latents).max() > 1e-4


def test_guidance_scale_1_is_plain_sampling_and_the_default_comes_from_the_model():
    model = tiny_model(null_condition=-1.0, default_guidance=2.0)
    assert model.sample(seed=1, steps=2, device="cpu").settings["guidance"] == 2.0
    one = model.sample(seed=1, steps=2, device="cpu", guidance=1.0)
    plain = tiny_model(null_condition=None).sample(seed=1, steps=2, device="cpu")
    assert (one.volumes == plain.volumes).all()


@pytest.mark.parametrize(
    ("guidance", "message"),
    [
        (0.5, r"guidance must be a number from 1 to 20 \(got 0.5\)"),
        ("2", r"guidance must be a number from 1 to 20 \(got '2'\)"),
        (25.0, r"guidance must be a number from 1 to 20 \(got 25.0\)"),
    ],
)
def test_bad_guidance_is_refused(guidance, message):
    with pytest.raises(InvalidParameterError, match=message):
        tiny_model(null_condition=-1.0).sample(seed=0, steps=2, guidance=guidance)


def test_guidance_needs_a_model_trained_with_conditioning_dropout():
    with pytest.raises(InvalidParameterError, match=r"guidance must be 1 for model 'tiny': it was trained without"):
        tiny_model().sample(seed=0, steps=2, guidance=2.0)
    with pytest.raises(ModelLoadError, match="default_guidance other than 1 needs a null_condition"):
        tiny_config(default_guidance=2.0)


def test_guidance_settings_survive_the_model_file():
    config = tiny_config(null_condition=-1.0, default_guidance=1.5)
    again = ModelConfig.from_dict(config.to_dict())
    assert (again.null_condition, again.default_guidance) == (-1.0, 1.5)
    old = config.to_dict()
    del old["null_condition"], old["default_guidance"]  # model files written before guidance existed
    assert (ModelConfig.from_dict(old).null_condition, ModelConfig.from_dict(old).default_guidance) == (None, 1.0)


def test_training_with_conditioning_dropout_makes_a_guidable_model(cohort_dir, trained_autoencoder, tmp_path):
    config = write_training_config(
        tmp_path / "c.json", diffusion={"steps": 4, "conditioning_dropout": 0.5, "sampling_guidance": 2.0}
    )
    run = train_diffusion(cohort_dir, trained_autoencoder, config, tmp_path / "run", device="cpu", quiet=True)
    model = brainsynth.load_model(run)
    assert model.config.null_condition == -1.0
    assert model.config.default_guidance == 2.0
    assert model.sample(seed=0, steps=2, device="cpu").settings["guidance"] == 2.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampling_guidance": 2.0}, "sampling_guidance other than 1 needs diffusion.conditioning_dropout above 0"),
        (
            {"sampling_guidance": 0.5, "conditioning_dropout": 0.1},
            r"sampling_guidance must be from 1 to 20 \(got 0.5\)",
        ),
        ({"conditioning_dropout": 1.0}, r"conditioning_dropout must be from 0 to below 1 \(got 1.0\)"),
    ],
)
def test_bad_guidance_training_settings_are_refused(tmp_path, changes, message):
    with pytest.raises(InvalidParameterError, match=message):
        load_training_config(write_training_config(tmp_path / "c.json", diffusion=changes))


def test_fine_tuning_starts_from_the_given_model(cohort_dir, trained_autoencoder, trained_model, tmp_path):
    config = write_training_config(
        tmp_path / "c.json", diffusion={"steps": 1, "lr": 1e-12, "warmup_steps": 1, "conditioning_dropout": 0.2}
    )
    run = train_diffusion(
        cohort_dir, trained_autoencoder, config, tmp_path / "tuned", device="cpu", quiet=True, init_from=trained_model
    )
    start, tuned = brainsynth.load_model(trained_model).unet.state_dict(), brainsynth.load_model(run).unet.state_dict()
    assert all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in start)
    assert '"init_from"' in (run / "run.json").read_text()


def test_fine_tuning_refuses_a_model_of_other_settings(cohort_dir, trained_autoencoder, trained_model, tmp_path):
    config = write_training_config(
        tmp_path / "c.json",
        diffusion={"steps": 1, "network": {**load_training_config("tiny").diffusion.network, "channels": [8, 8]}},
    )
    with pytest.raises(InvalidParameterError, match=r"init_from '.*' cannot start this run: its U-Net settings"):
        train_diffusion(
            cohort_dir,
            trained_autoencoder,
            config,
            tmp_path / "tuned",
            device="cpu",
            quiet=True,
            init_from=trained_model,
        )
    with pytest.raises(InvalidParameterError, match=r"init_from must be a model name or folder \(got '/nowhere'"):
        train_diffusion(
            cohort_dir, trained_autoencoder, "tiny", tmp_path / "other", device="cpu", quiet=True, init_from="/nowhere"
        )
