"""Fine-tuning an autoencoder's decoder alone: the latents stay, reconstructions improve, runs resume."""

import json
import subprocess
import sys

import pytest
import torch

from brainsynth.bids import DataSettings, TrainingImages
from brainsynth.errors import InvalidParameterError
from brainsynth.training import train_autoencoder
from brainsynth.training.autoencoder import load_trained_autoencoder
from brainsynth.training.checkpoint import CheckpointError
from tests.conftest import write_training_config

DECODER = {"fine_tune": "decoder", "mse_weight": 1.0, "lr_schedule": "cosine", "patch_size": [12, 16, 12]}


def _reconstruction_error(autoencoder, images):
    with torch.no_grad():
        errors = []
        for index in range(len(images)):
            image = images.images(torch.tensor([index]))
            z_mu, _ = autoencoder.encode(image)
            errors.append(float((autoencoder.decode(z_mu) - image).pow(2).mean()))
    return sum(errors) / len(errors)


@pytest.mark.parametrize(("patch_size", "gain"), [(None, 0.7), ([12, 16, 12], 0.9)], ids=["whole", "crops"])
def test_fine_tuning_the_decoder_keeps_the_latents_and_sharpens(
    cohort_dir, trained_autoencoder, tmp_path, patch_size, gain
):
    """Crops are decoded with a margin and compared with the image where they lie: misplaced, no gain."""
    settings = {**DECODER, "steps": 80, "lr": 1e-3, "patch_size": patch_size}
    config = write_training_config(tmp_path / "decoder.json", autoencoder=settings)
    output = tmp_path / "decoder"
    train_autoencoder(cohort_dir, config, output, init_from=trained_autoencoder, device="cpu", quiet=True)
    before, _ = load_trained_autoencoder(trained_autoencoder)
    after, _ = load_trained_autoencoder(output)
    start, tuned = before.state_dict(), after.state_dict()
    frozen = [k for k in start if not k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen
    assert all(torch.equal(start[k], tuned[k]) for k in frozen)  # the same encoder: the same latents
    assert any(not torch.equal(start[k], tuned[k]) for k in start if k.startswith("decoder."))
    images = TrainingImages(cohort_dir, DataSettings(spacing=8.0, shape=(20, 28, 20), covariates="ukb"))
    assert _reconstruction_error(after, images) < gain * _reconstruction_error(before, images)
    assert (output / "latents.pt").is_file()
    assert '"init_from"' in (output / "run.json").read_text()


def test_an_interrupted_fine_tuning_resumes_exactly(cohort_dir, trained_autoencoder, tmp_path):
    settings = {**DECODER, "steps": 8, "adversarial_warmup": 4, "lr_schedule": "constant"}  # cosine ends at --steps
    config = write_training_config(tmp_path / "decoder.json", autoencoder=settings)
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    train_autoencoder(cohort_dir, config, straight, init_from=trained_autoencoder, device="cpu", quiet=True)
    train_autoencoder(cohort_dir, config, halves, init_from=trained_autoencoder, device="cpu", quiet=True, steps=4)
    train_autoencoder(
        cohort_dir, config, halves, init_from=trained_autoencoder, device="cpu", quiet=True, steps=8, resume=True
    )
    a, _ = load_trained_autoencoder(straight)
    b, _ = load_trained_autoencoder(halves)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    other = train_autoencoder(cohort_dir, "tiny", tmp_path / "other", device="cpu", quiet=True, steps=2).parent
    with pytest.raises(CheckpointError, match="latents of another autoencoder"):
        train_autoencoder(cohort_dir, config, halves, init_from=other, device="cpu", quiet=True, steps=12, resume=True)


def test_the_cli_fine_tunes_a_models_decoder(cohort_dir, trained_model, tmp_path):
    """``--init-from`` takes a model folder too; the run is one command, like the other stages."""
    config = write_training_config(tmp_path / "decoder.json", autoencoder={**DECODER, "steps": 2})
    output = tmp_path / "decoder"
    command = [sys.executable, "-m", "brainsynth", "train", "autoencoder", "--data", str(cohort_dir)]
    command += [
        "--config",
        str(config),
        "--output",
        str(output),
        "--init-from",
        str(trained_model),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (output / "autoencoder.json").is_file()
    # The start is named by the hash its model folder records for the autoencoder's weight file.
    recorded = json.loads((trained_model / "model.json").read_text())["weights"]["autoencoder"]["sha256"]
    assert json.loads((output / "run.json").read_text())["autoencoder_weights"] == recorded


def test_decoder_fine_tuning_refuses_bad_starts_before_writing(cohort_dir, tmp_path):
    config = write_training_config(tmp_path / "decoder.json", autoencoder={**DECODER, "steps": 2})
    with pytest.raises(InvalidParameterError, match="needs init_from"):
        train_autoencoder(cohort_dir, config, tmp_path / "none", device="cpu", quiet=True)
    with pytest.raises(InvalidParameterError, match=r"init_from .* cannot start this run: its autoencoder settings"):
        train_autoencoder(cohort_dir, config, tmp_path / "demo", init_from="demo", device="cpu", quiet=True)
    bad = write_training_config(tmp_path / "bad.json", autoencoder={"fine_tune": "encoder"})
    with pytest.raises(InvalidParameterError, match="fine_tune must be 'all' or 'decoder'"):
        train_autoencoder(cohort_dir, bad, tmp_path / "bad", device="cpu", quiet=True)
    assert not any((tmp_path / name).exists() for name in ("none", "demo", "bad"))


def test_a_unet_follows_its_fine_tuned_autoencoder(cohort_dir, trained_autoencoder, trained_model, tmp_path):
    """The whole autoencoder fine-tuned moves the latents: the U-Net may start from the model trained on the
    autoencoder it came from only when the configuration says so, and then takes the new scale factor."""
    from brainsynth import load_model
    from brainsynth.training import train_diffusion

    whole = write_training_config(
        tmp_path / "whole.json", autoencoder={"fine_tune": "all", "steps": 6, "lr": 1e-3, "patch_size": [12, 16, 12]}
    )
    tuned_autoencoder = tmp_path / "tuned-autoencoder"
    train_autoencoder(cohort_dir, whole, tuned_autoencoder, init_from=trained_autoencoder, device="cpu", quiet=True)
    diffusion = {"steps": 1, "lr": 1e-12, "warmup_steps": 1}
    same = write_training_config(tmp_path / "same.json", diffusion=diffusion)
    with pytest.raises(InvalidParameterError, match=r"latent scale factor .* set diffusion.init_autoencoder"):
        train_diffusion(
            cohort_dir, tuned_autoencoder, same, tmp_path / "refused", device="cpu", quiet=True, init_from=trained_model
        )
    assert not (tmp_path / "refused" / "model.json").exists()

    follows = write_training_config(
        tmp_path / "follows.json", diffusion={**diffusion, "init_autoencoder": "fine-tuned"}
    )
    run = train_diffusion(
        cohort_dir, tuned_autoencoder, follows, tmp_path / "follows", device="cpu", quiet=True, init_from=trained_model
    )
    start, tuned = load_model(trained_model), load_model(run)
    assert all(torch.allclose(v, tuned.unet.state_dict()[k], atol=1e-6) for k, v in start.unet.state_dict().items())
    assert abs(tuned.config.scale_factor / start.config.scale_factor - 1) > 1e-4  # the run's own scale factor

    bad = write_training_config(tmp_path / "bad.json", diffusion={"init_autoencoder": "other"})
    with pytest.raises(InvalidParameterError, match=r"diffusion.init_autoencoder must be 'same' .* \(got 'other'\)"):
        train_diffusion(cohort_dir, tuned_autoencoder, bad, tmp_path / "bad", device="cpu", quiet=True)


def test_a_decoder_grown_deeper_starts_as_the_trained_one_and_keeps_the_latents(
    cohort_dir, trained_autoencoder, tmp_path
):
    """More residual blocks per level than the start: the added blocks begin as identities, then learn."""
    from brainsynth.training.growth import grow_autoencoder

    before, manifest = load_trained_autoencoder(trained_autoencoder)
    deeper = {**manifest["network"], "num_res_blocks": [2, 3]}
    grown = grow_autoencoder(before, deeper)
    assert sum(p.numel() for p in grown.decoder.parameters()) > sum(p.numel() for p in before.decoder.parameters())
    images = TrainingImages(cohort_dir, DataSettings(spacing=8.0, shape=(20, 28, 20), covariates="ukb"))
    image = images.images(torch.tensor([0]))
    with torch.no_grad():
        assert torch.equal(grown.encode(image)[0], before.encode(image)[0])
        assert torch.allclose(grown.reconstruct(image)[0], before.reconstruct(image)[0], atol=1e-6)

    settings = {**DECODER, "steps": 80, "lr": 1e-3, "network": deeper}
    config = write_training_config(tmp_path / "deeper.json", autoencoder=settings)
    output = tmp_path / "deeper"
    train_autoencoder(cohort_dir, config, output, init_from=trained_autoencoder, device="cpu", quiet=True)
    after, record = load_trained_autoencoder(output)
    assert record["network"]["num_res_blocks"] == [2, 3]
    with torch.no_grad():
        assert torch.equal(after.encode(image)[0], before.encode(image)[0])  # the same latents
    assert _reconstruction_error(after, images) < 0.9 * _reconstruction_error(before, images)

    fewer = write_training_config(tmp_path / "fewer.json", autoencoder={**settings, "network": manifest["network"]})
    with pytest.raises(
        InvalidParameterError, match=r"may add residual blocks .* not remove them \(level 0: 1 < 2; level 1: 1 < 3\)"
    ):
        train_autoencoder(cohort_dir, fewer, tmp_path / "fewer", init_from=output, device="cpu", quiet=True)
    assert not (tmp_path / "fewer").exists()
