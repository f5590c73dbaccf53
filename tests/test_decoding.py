"""Memory-bounded (split) decoding gives the plain decode's volume, for any slab size."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.networks.nets import AutoencoderKL

from brainsynth.cli import main
from brainsynth.errors import InvalidParameterError
from brainsynth.loading.networks import build_unet
from brainsynth.model import LatentDiffusionModel
from brainsynth.sampling import decoding
from brainsynth.sampling.decoding import SplitDecoder, choose_decoding, largest_activation_bytes
from tests.tiny import TINY_AUTOENCODER, TINY_UNET, tiny_config


def _autoencoder(**changes) -> AutoencoderKL:
    """Three levels, uneven res blocks and channel changes, weights moved off their initial values."""
    settings = {**TINY_AUTOENCODER, "channels": [8, 16, 16], "num_res_blocks": [1, 2, 1], **changes}
    settings["attention_levels"] = [False] * len(settings["channels"])
    torch.manual_seed(0)
    autoencoder = AutoencoderKL(**settings).eval()
    with torch.no_grad():
        for parameter in autoencoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return autoencoder


@pytest.mark.parametrize("slab_bytes", [1, 3000, 60000, 2**30])
def test_split_decode_equals_plain_decode(slab_bytes):
    autoencoder = _autoencoder()
    z = torch.randn(2, 3, 5, 7, 6, generator=torch.Generator().manual_seed(1))  # odd sizes, batch of two
    with torch.no_grad():
        plain = autoencoder.decode(z)
    split = SplitDecoder(autoencoder, slab_bytes=slab_bytes)(z)
    assert split.shape == plain.shape == (2, 1, 20, 28, 24)
    assert float((split - plain).abs().max()) < 1e-4 * float(plain.abs().max())


def test_split_decode_under_bfloat16_autocast_stays_close():
    autoencoder = _autoencoder()
    z = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = autoencoder.decode(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        split = SplitDecoder(autoencoder, slab_bytes=2000)(z).float()
    assert float((split - plain).abs().mean()) < 0.05 * float(plain.abs().mean())


def test_model_split_and_full_decoding_give_the_same_brain():
    config = tiny_config()
    torch.manual_seed(0)
    model = LatentDiffusionModel(config, _autoencoder(channels=[8, 8], num_res_blocks=1), build_unet(TINY_UNET))
    model.decoding = "full"
    full = model.sample(seed=3)
    model.decoding = "split"
    split = model.sample(seed=3)
    assert full.settings["decoding"] == "full"
    assert split.settings["decoding"] == "split"
    np.testing.assert_allclose(split.volume, full.volume, atol=1e-5)


def test_auto_decoding_splits_when_memory_is_short(monkeypatch):
    autoencoder = _autoencoder()
    latent = (3, 20, 28, 20)
    largest = largest_activation_bytes(autoencoder, latent)
    assert largest == 16 * 80 * 112 * 80 * 4  # the last level's upsampled 16-channel activation
    monkeypatch.setattr(decoding, "available_memory", lambda device: 100 * largest)
    assert choose_decoding(autoencoder, latent, torch.device("cpu"))[0] == "full"
    monkeypatch.setattr(decoding, "available_memory", lambda device: 2 * largest)
    mode, slab = choose_decoding(autoencoder, latent, torch.device("cpu"))
    assert mode == "split"
    assert 8 * 2**20 <= slab <= decoding.SLAB_BYTES


def test_decoder_with_attention_is_decoded_in_one_piece(model):
    attention = {**TINY_AUTOENCODER, "with_decoder_nonlocal_attn": True}
    model.autoencoder = AutoencoderKL(**attention).eval()
    assert choose_decoding(model.autoencoder, (3, 8, 8, 8), torch.device("cpu"))[0] == "full"
    with pytest.raises(InvalidParameterError, match="decoding 'split' is not available"):
        model.decoding = "split"
    with pytest.raises(InvalidParameterError, match="decoding must be one of auto, full, split"):
        model.decoding = "tiles"


def test_cli_split_decoding_writes_the_same_volume(model_dir, tmp_path):
    outputs = {}
    for mode in ("full", "split"):
        outputs[mode] = tmp_path / f"{mode}.nii.gz"
        assert (
            main(
                [
                    "sample",
                    "--model",
                    str(model_dir),
                    "--seed",
                    "5",
                    "--decoding",
                    mode,
                    "--quiet",
                    "--output",
                    str(outputs[mode]),
                ]
            )
            == 0
        )
    full, split = (np.asarray(nib.load(outputs[m]).dataobj) for m in ("full", "split"))
    np.testing.assert_allclose(split, full, atol=1e-5)


def test_cli_low_memory_settings(model_dir, tmp_path, capsys):
    out = tmp_path / "low.nii.gz"
    assert (
        main(
            [
                "sample",
                "--model",
                str(model_dir),
                "--seed",
                "5",
                "--decoding",
                "split",
                "--precision",
                "bfloat16",
                "--weight-dtype",
                "bfloat16",
                "--quiet",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert np.isfinite(np.asarray(nib.load(out).dataobj)).all()
    assert (
        main(
            [
                "sample",
                "--model",
                str(model_dir),
                "--weight-dtype",
                "bfloat16",
                "--precision",
                "float32",
                "--quiet",
                "--output",
                str(tmp_path / "refused.nii.gz"),
            ]
        )
        == 1
    )
    assert "--weight-dtype bfloat16 needs --precision bfloat16" in capsys.readouterr().err
    default = tmp_path / "default.nii.gz"  # without --precision, bfloat16 weights sample in bfloat16
    assert (
        main(["sample", "--model", str(model_dir), "--weight-dtype", "bfloat16", "--quiet", "--output", str(default)])
        == 0
    )
    assert '"precision": "bfloat16"' in default.with_name("default.json").read_text()


def test_free_memory_counts_reclaimable_cache_without_psutil(block_import):
    """Without psutil the probe reads MemAvailable (page cache included), not just the unused pages."""
    import os
    from pathlib import Path

    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        pytest.skip("no /proc/meminfo on this system")
    block_import("psutil")
    probed = decoding.available_memory(torch.device("cpu"))
    available = next(
        int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:")
    )
    unused = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert abs(probed - available) < 256 * 2**20  # the same figure, read a moment apart
    assert probed >= unused - 256 * 2**20


@pytest.mark.parametrize("platform", ["macos", "windows"])
def test_free_memory_probe_and_sampling_work_on_other_platforms(monkeypatch, block_import, model, platform):
    """Without psutil and /proc: macOS has os.sysconf but no SC_AVPHYS_PAGES, Windows no os.sysconf at all."""
    import os
    from pathlib import Path

    block_import("psutil")
    monkeypatch.setattr(decoding, "MEMINFO", Path("/nonexistent/meminfo"))
    if platform == "macos":
        names = {k: v for k, v in os.sysconf_names.items() if k != "SC_AVPHYS_PAGES"}
        monkeypatch.setattr(os, "sysconf_names", names)
        expected = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    else:
        monkeypatch.delattr(os, "sysconf")
        expected = 0
    assert decoding.available_memory(torch.device("cpu")) == expected
    result = model.sample(seed=1, steps=2)
    assert np.isfinite(result.volume).all()
    assert result.settings["decoding"] == ("split" if platform == "windows" else "full")
