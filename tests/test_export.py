"""Export to a MONAI bundle that MONAI's bundle tools and brainsynth both read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

import brainsynth
from brainsynth.loading.export import export_bundle


def test_exported_bundle_loads_with_monai_bundle_tools(model, tmp_path):
    bundle = export_bundle(model, tmp_path / "bundle")
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser["bundle_root"] = str(bundle)
    parser["device"] = "$torch.device('cpu')"
    parser.get_parsed_content("scheduler")  # requires (and so runs) the weight loading
    unet = parser.get_parsed_content("diffusion")
    autoencoder = parser.get_parsed_content("autoencoder")
    assert all(torch.equal(v, model.unet.state_dict()[k]) for k, v in unet.state_dict().items())
    assert all(torch.equal(v, model.autoencoder.state_dict()[k]) for k, v in autoencoder.state_dict().items())
    assert parser.get_parsed_content("noise").shape == (1, 3, 8, 8, 8)
    assert parser["scale_factor"] == model.config.scale_factor
    assert parser["_meta_"]["network_data_format"]["outputs"]["image"]["spatial_shape"] == [16, 16, 16]


def test_exported_bundle_samples_like_the_model(model, tmp_path):
    bundle = export_bundle(model, tmp_path / "bundle")
    loaded = brainsynth.load_model(bundle)
    assert loaded.config.covariates == model.config.covariates
    np.testing.assert_array_equal(loaded.config.affine_array, model.config.affine_array)
    np.testing.assert_array_equal(loaded.sample(seed=4, steps=3).volume, model.sample(seed=4, steps=3).volume)
    assert json.loads((bundle / "configs" / "brainsynth.json").read_text())["name"] == "tiny"


def test_export_never_overwrites_unless_asked(model, tmp_path):
    export_bundle(model, tmp_path / "bundle")
    with pytest.raises(brainsynth.OutputExistsError, match=r"bundle exists"):
        export_bundle(model, tmp_path / "bundle")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"output folder .* does not exist"):
        export_bundle(model, tmp_path / "missing" / "bundle")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("noise_schedule", "schedule", "$__import__('os').system('touch {marker}')"),
        ("unet", "attention_levels", [False, "$__import__('os').system('touch {marker}')"]),
        ("autoencoder", "channels", "@something_else"),
    ],
)
def test_model_json_with_code_in_its_settings_is_refused(model_dir, tmp_path, section, key, value):
    """Such a model would carry the code into every bundle exported from it."""
    marker = tmp_path / "code-ran"
    manifest = json.loads((model_dir / "model.json").read_text())
    filled = json.loads(json.dumps(value).replace("{marker}", str(marker)))
    manifest["config"][section][key] = filled
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(brainsynth.ModelLoadError, match=rf"{section}\.{key}"):
        brainsynth.load_model(model_dir)
    assert not marker.exists()


def test_export_refuses_texts_that_monai_would_evaluate(model, tmp_path):
    from dataclasses import replace

    model.config = replace(model.config, description="$__import__('os').system('touch code-ran')")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"description is .* would evaluate or resolve"):
        export_bundle(model, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_export_never_replaces_its_own_model_or_what_is_not_a_bundle(model_dir, tmp_path):
    from brainsynth.cli import main

    model_json = (model_dir / "model.json").read_text()
    assert (
        main(
            ["export", "--model", str(model_dir), "--format", "monai-bundle", "--output", str(model_dir), "--overwrite"]
        )
        == 1
    )
    assert (model_dir / "model.json").read_text() == model_json
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is not a bundle that brainsynth made"):
        export_bundle(brainsynth.load_model(model_dir), other, overwrite=True)
    assert (other / "keep.txt").read_text() == "keep"
