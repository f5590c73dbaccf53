"""MONAI bundles in the published model's two public layouts, with old-format weights made by monai-generative."""

from __future__ import annotations

import json
import pickle

import pytest

import brainsynth
from brainsynth.loading.bundle import read_bundle_config
from brainsynth.loading.presets import UKB_COVARIATES


def test_bundle_config_is_read_as_data(layout_bundle):
    config = read_bundle_config(layout_bundle)
    assert config.latent_shape == (3, 8, 8, 8)
    assert config.image_shape == (16, 16, 16)  # from the autoencoder's levels, whichever spelling gives them
    assert config.autoencoder["channels"] == [8, 8]
    assert "num_channels" not in config.autoencoder
    assert "num_channels" not in config.unet
    assert config.unet["in_channels"] == 7
    assert config.unet["cross_attention_dim"] == 4
    assert "use_flash_attention" not in config.unet
    assert config.noise_schedule.beta_end == pytest.approx(0.0205)
    assert config.default_steps == 50
    assert config.covariates == UKB_COVARIATES
    expected = "MONAI GenerativeModels" if "generative" in layout_bundle.name else "MONAI model zoo"
    assert config.extra["bundle_layout"] == expected


def test_old_format_bundle_loads_and_records_md5(bundle_dir):
    model = brainsynth.load_model(bundle_dir)
    assert model.weight_hashes["unet"]["file"] == "models/model.pt"
    assert len(model.weight_hashes["unet"]["md5"]) == 32
    assert model.config.covariate_names == ("sex", "age", "ventricular_volume", "brain_volume")


def test_generative_models_bundle_loads_its_pth_files_without_sums(tmp_path, old_networks):
    from tests.bundles import write_layout

    bundle = write_layout(tmp_path / "bundle", "generative", *old_networks)
    model = brainsynth.load_model(bundle)
    assert model.weight_hashes["autoencoder"]["file"] == "models/autoencoder.pth"
    assert model.weight_hashes["unet"]["file"] == "models/diffusion_model.pth"
    assert len(model.weight_hashes["unet"]["sha256"]) == 64  # no md5 given: the file's own hash is recorded
    assert model.sample(seed=0, steps=2).volumes.shape == (1, 16, 16, 16)


def test_checksums_are_checked_before_any_network_is_built(bundle_dir, monkeypatch):
    import brainsynth.loading.assemble

    def refuse(settings):
        raise AssertionError("a network was built before the weight files were checked")

    monkeypatch.setattr(brainsynth.loading.assemble, "build_autoencoder", refuse)
    monkeypatch.setattr(brainsynth.loading.assemble, "build_unet", refuse)
    path = bundle_dir / "models" / "model.pt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(brainsynth.ChecksumError):
        brainsynth.load_model(bundle_dir)


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


def _edit(section: str, key: str, value):
    """A change to configs/inference.json: ``section`` None edits a top-level key."""

    def change(config: dict) -> None:
        (config if section is None else config[section])[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_edit("diffusion_def", "channels", "$__import__('os').getcwd()"), r"diffusion_def.channels is an expression"),
        (
            _edit("diffusion_def", "attention_levels", [False, "$__import__('os').getcwd()"]),
            r"diffusion_def.attention_levels\[1\] is an expression",
        ),
        (
            _edit(None, "load_diffusion_path", "$@model_dir + '/../../elsewhere.pt'"),
            r"outside the bundle's models folder",
        ),
        (_edit("autoencoder_def", "num_channels", [8, 16]), r"gives channels twice with different values"),
    ],
    ids=["expression", "expression-in-list", "weights-outside", "two-spellings"],
)
def test_bundle_config_that_is_not_plain_data_is_refused(bundle_dir, change, message):
    path = bundle_dir / "configs" / "inference.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    with pytest.raises(brainsynth.ModelLoadError, match=message):
        brainsynth.load_model(bundle_dir)


def test_bundle_weights_of_other_network(tmp_path, bundle_dir):
    path = bundle_dir / "configs" / "inference.json"
    config = json.loads(path.read_text())
    config["diffusion_def"]["channels"] = [16, 16]
    path.write_text(json.dumps(config))
    with pytest.raises(brainsynth.ModelLoadError, match=r"unet weights do not fit the configured network"):
        brainsynth.load_model(bundle_dir)
