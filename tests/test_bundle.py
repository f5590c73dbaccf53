"""MONAI bundles in the published model's layout, with old-format weights made by monai-generative."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from monai.networks.schedulers import DDIMScheduler

import brainsynth
from brainsynth.bundle import read_bundle_config
from brainsynth.noise import draw_noise
from brainsynth.presets import UKB_COVARIATES
from brainsynth.reference import reference_sample


def test_bundle_config_is_read_as_data(bundle_dir):
    config = read_bundle_config(bundle_dir)
    assert config.latent_shape == (3, 8, 8, 8)
    assert config.image_shape == (16, 16, 16)
    assert config.unet["in_channels"] == 7
    assert config.unet["cross_attention_dim"] == 4
    assert "use_flash_attention" not in config.unet
    assert config.noise_schedule.beta_end == pytest.approx(0.0205)
    assert config.default_steps == 50
    assert config.covariates == UKB_COVARIATES


def test_old_format_bundle_loads_and_records_md5(bundle_dir):
    model = brainsynth.load_model(bundle_dir)
    assert model.weight_hashes["unet"]["file"] == "models/model.pt"
    assert len(model.weight_hashes["unet"]["md5"]) == 32
    assert model.config.covariate_names == ("sex", "age", "ventricular_volume", "brain_volume")


def test_ddim50_matches_reference_loop_with_old_networks(bundle_dir, old_networks):
    """The bundle's own sampler run with the old GenerativeModels networks and the same noise."""
    model = brainsynth.load_model(bundle_dir)
    covariates = {"sex": "male", "age": 71.0, "ventricular_volume": 60.0, "brain_volume": 1500.0}
    noise = draw_noise(5, (3, 8, 8, 8))
    ours = model.sample(covariates, noise=noise, steps=50, scheduler="ddim", device="cpu")

    normalised = [spec.normalise(v if spec.name != "sex" else 1.0) for spec, v in
                  zip(UKB_COVARIATES, covariates.values(), strict=True)]
    conditioning = torch.tensor([[normalised]], dtype=torch.float32)
    scheduler = DDIMScheduler(num_train_timesteps=1000, schedule="scaled_linear_beta", beta_start=0.0015,
                              beta_end=0.0205, clip_sample=False)
    scheduler.set_timesteps(num_inference_steps=50)
    old_autoencoder, old_unet = old_networks
    expected = reference_sample(noise[None], old_autoencoder, old_unet, scheduler, conditioning)

    assert ours.volumes.shape == (1, 16, 16, 16)
    np.testing.assert_allclose(ours.volumes[0], expected[0, 0].numpy(), atol=1e-5, rtol=1e-4)
    assert np.abs(ours.volumes[0] - expected[0, 0].numpy()).max() < 1e-5


def test_bundle_missing_weight_file(bundle_dir):
    (bundle_dir / "models" / "model.pt").unlink()
    with pytest.raises(brainsynth.ModelNotFoundError, match=r"missing its unet weight file models/model.pt"):
        brainsynth.load_model(bundle_dir)


def test_bundle_wrong_checksum(bundle_dir):
    path = bundle_dir / "models" / "autoencoder.pt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(brainsynth.ChecksumError, match=r"its md5 is [0-9a-f]{32}, the model declares"):
        brainsynth.load_model(bundle_dir)


def test_bundle_truncated_weight_file(bundle_dir):
    (bundle_dir / "large_files.yml").unlink()
    path = bundle_dir / "models" / "model.pt"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(brainsynth.ModelLoadError, match=r"not a readable PyTorch checkpoint"):
        brainsynth.load_model(bundle_dir)


def test_bundle_non_checkpoint_file(bundle_dir):
    (bundle_dir / "large_files.yml").unlink()
    (bundle_dir / "models" / "model.pt").write_text("this is not a checkpoint\n")
    with pytest.raises(brainsynth.ModelLoadError, match=r"not a readable PyTorch checkpoint"):
        brainsynth.load_model(bundle_dir)


class _Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("code ran while loading weights",))


def test_bundle_pickle_with_code_is_refused(bundle_dir, capsys):
    (bundle_dir / "large_files.yml").unlink()
    with open(bundle_dir / "models" / "model.pt", "wb") as stream:
        pickle.dump({"weight": _Payload()}, stream)
    with pytest.raises(brainsynth.ModelLoadError, match=r"pickle that carries code"):
        brainsynth.load_model(bundle_dir)
    assert "code ran" not in capsys.readouterr().out


def test_bundle_expression_in_network_settings_is_refused(bundle_dir):
    path = bundle_dir / "configs" / "inference.json"
    config = json.loads(path.read_text())
    config["diffusion_def"]["channels"] = "$__import__('os').getcwd()"
    path.write_text(json.dumps(config))
    with pytest.raises(brainsynth.ModelLoadError, match=r"diffusion_def.channels is an expression"):
        brainsynth.load_model(bundle_dir)


def test_bundle_weights_of_other_network(tmp_path, bundle_dir):
    path = bundle_dir / "configs" / "inference.json"
    config = json.loads(path.read_text())
    config["diffusion_def"]["channels"] = [16, 16]
    path.write_text(json.dumps(config))
    with pytest.raises(brainsynth.ModelLoadError, match=r"unet weights do not fit the configured network"):
        brainsynth.load_model(bundle_dir)
