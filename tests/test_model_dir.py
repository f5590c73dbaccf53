"""brainsynth model folders: round trip, checksums, and configurations that do not add up."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import brainsynth
from brainsynth.config import ModelConfig
from tests.tiny import tiny_config


def test_round_trip_gives_the_same_brains(model, model_dir):
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "README.md",
        "autoencoder.safetensors",
        "model.json",
        "unet.safetensors",
    ]
    loaded = brainsynth.load_model(model_dir)
    assert loaded.config == model.config
    assert len(loaded.weight_hashes["unet"]["sha256"]) == 64
    np.testing.assert_array_equal(loaded.sample(seed=3, steps=3).volume, model.sample(seed=3, steps=3).volume)
    assert "| age | Age | 44 to 82 years | 64.0 |" in (model_dir / "README.md").read_text()


def test_changed_weight_file_is_reported_by_checksum(model_dir):
    path = model_dir / "unet.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(brainsynth.ChecksumError, match=r"unet.safetensors is damaged .* sha256 is [0-9a-f]{64}"):
        brainsynth.load_model(model_dir)


@pytest.mark.parametrize("outside", ["../elsewhere.safetensors", "/etc/hostname"])
def test_weight_file_outside_the_model_folder_is_refused(model_dir, outside):
    """A model.json cannot make brainsynth read, or print the hash of, any file but its own weights."""
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["weights"]["unet"]["file"] = outside
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(brainsynth.ModelLoadError, match=r"not inside the model folder") as raised:
        brainsynth.load_model(model_dir)
    assert "sha256 is" not in str(raised.value)


def test_truncated_safetensors_is_reported(model_dir):
    path = model_dir / "autoencoder.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    manifest = json.loads((model_dir / "model.json").read_text())
    from brainsynth.loading.weights import hash_file

    manifest["weights"]["autoencoder"]["sha256"] = hash_file(path)
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(brainsynth.ModelLoadError, match=r"not a readable safetensors file"):
        brainsynth.load_model(model_dir)


def test_saving_never_replaces_an_existing_model(model, model_dir):
    with pytest.raises(brainsynth.OutputExistsError, match=r"tiny-model exists"):
        brainsynth.save_model_dir(model, model_dir)


def test_inconsistent_configuration_names_the_fields():
    with pytest.raises(brainsynth.ModelLoadError, match=r"unet in_channels is 5 but concat\+crossattn conditioning"):
        tiny_config(unet={**tiny_config().unet, "in_channels": 5})
    with pytest.raises(brainsynth.ModelLoadError, match=r"cross_attention_dim is 3 but there are 4 covariates"):
        tiny_config(unet={**tiny_config().unet, "cross_attention_dim": 3})


def test_config_json_round_trip():
    config = tiny_config()
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(brainsynth.ModelLoadError, match=r"model configuration is malformed: it lacks autoencoder"):
        ModelConfig.from_dict({"name": "x"})


def test_unknown_model_name_or_path(tmp_path):
    with pytest.raises(brainsynth.ModelNotFoundError, match=r"model must be one of demo, ukb or the path .*nonsense"):
        brainsynth.load_model("nonsense")
    with pytest.raises(brainsynth.ModelNotFoundError, match=r"neither a brainsynth model folder"):
        brainsynth.load_model(tmp_path)


def test_ukb_not_downloaded_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(brainsynth.ModelNotFoundError, match=r"run 'brainsynth download ukb'"):
        brainsynth.load_model("ukb")


def test_ukb_is_found_in_the_cache(tmp_path, monkeypatch, old_networks):
    from tests.bundles import write_layout

    monkeypatch.setenv("BRAINSYNTH_HOME", str(tmp_path / "home"))
    write_layout(
        tmp_path / "home" / "bundles" / "brain_image_synthesis_latent_diffusion_model", "model-zoo", *old_networks
    )
    model = brainsynth.load_model("ukb")
    assert model.name == "ukb"


_SAVE_SCRIPT = """
import hashlib, sys
from tests.tiny import tiny_model
from brainsynth.loading.model_dir import save_model_dir
folder = save_model_dir(tiny_model(), sys.argv[1])
print(hashlib.sha256((folder / "unet.safetensors").read_bytes()).hexdigest())
"""


def test_saving_the_same_weights_gives_the_same_bytes(tmp_path, model):
    """Equal weights give equal files and SHA-256 values, in one process and across processes."""
    import subprocess
    import sys

    from brainsynth.loading.model_dir import save_model_dir
    from brainsynth.loading.weights import hash_file

    digests = {hash_file(save_model_dir(model, tmp_path / f"here{run}") / "unet.safetensors") for run in range(10)}
    for run in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _SAVE_SCRIPT, str(tmp_path / f"there{run}")],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "random"},
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_deterministic_safetensors_read_back_with_every_type():
    from safetensors.torch import load

    from brainsynth.loading.weights import safetensors_bytes

    tensors = {
        "b.float": torch.randn(3, 2),
        "a.half": torch.randn(4).half(),
        "c.bf16": torch.randn(2, 2).bfloat16(),
        "d.long": torch.arange(5),
        "e.bool": torch.tensor([True, False]),
        "f.scalar": torch.tensor(2.5),
        "g.strided": torch.randn(4, 4).t(),
    }
    loaded = load(safetensors_bytes(tensors, {"network": "unet", "format": "pt"}))
    assert sorted(loaded) == sorted(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor)


@pytest.mark.parametrize("damage", ["nan", "int32"])
def test_weights_that_are_not_finite_floats_are_refused(model_dir, damage):
    """Even when the file's hash matches model.json (saved that way), the weights are refused at load."""
    from brainsynth.loading.weights import hash_file, read_state_dict, safetensors_bytes

    path = model_dir / "unet.safetensors"
    weights = read_state_dict(path)
    key = next(k for k in sorted(weights) if k.endswith("conv.weight"))
    weights[key] = torch.full_like(weights[key], float("nan")) if damage == "nan" else weights[key].to(torch.int32)
    path.write_bytes(safetensors_bytes(weights))
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["weights"]["unet"]["sha256"] = hash_file(path)
    (model_dir / "model.json").write_text(json.dumps(manifest))
    folder = model_dir
    expected = r"NaN or infinite values" if damage == "nan" else r"not numbers of a floating-point type"
    with pytest.raises(brainsynth.ModelLoadError, match=expected):
        brainsynth.load_model(folder)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scale_factor", float("nan"), r"scale_factor must be a finite number above 0 \(got nan\)"),
        ("image_shape", [32, 32, 32], r"image_shape is \(32, 32, 32\) but the autoencoder decodes"),
    ],
)
def test_configurations_that_would_sample_garbage_are_refused(model_dir, field, value, message):
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["config"][field] = value
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(brainsynth.ModelLoadError, match=message):
        brainsynth.load_model(model_dir)


def test_a_brain_that_is_not_finite_is_never_written(model, tmp_path):
    with torch.no_grad():
        model.autoencoder.decoder.blocks[-1].conv.bias.fill_(float("nan"))
    with pytest.warns(RuntimeWarning, match=r"voxels of the sampled brains are NaN or infinite"):
        result = model.sample(seed=1, steps=2)
    with pytest.raises(brainsynth.NonFiniteResultError, match=r"item 0 \(4096 voxels\); nothing was written"):
        result.save(tmp_path / "brain.nii.gz")
    assert list(tmp_path.iterdir()) == []
