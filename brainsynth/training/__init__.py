"""Training the two stages of a latent diffusion model from a folder of NIfTI files.

``train_autoencoder`` and ``train_diffusion`` run on one process or, under ``torchrun``, on many with
DistributedDataParallel; both checkpoint atomically, stop cleanly on SIGINT/SIGTERM and resume exactly.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from brainsynth.bids import TrainingImages
from brainsynth.errors import InvalidParameterError
from brainsynth.loading.networks import build_autoencoder, build_unet
from brainsynth.model import LatentDiffusionModel
from brainsynth.training.autoencoder import AutoencoderTask
from brainsynth.training.checkpoint import check_resumable
from brainsynth.training.decoder import DecoderTask, load_start_autoencoder
from brainsynth.training.diffusion import DiffusionTask, check_autoencoder_folder
from brainsynth.training.distributed import init_distributed, shutdown
from brainsynth.training.loop import TrainingInterrupted, check_output, prepare_output, replacing_run, run_training
from brainsynth.training.settings import TrainingConfig, checked_config, load_training_config

__all__ = ["TrainingConfig", "TrainingInterrupted", "load_training_config", "train_autoencoder", "train_diffusion"]


def _train(
    task_name: str,
    data: str | Path,
    config: str | Path | TrainingConfig,
    output: str | Path,
    *,
    autoencoder: str | Path | None,
    resume: bool,
    overwrite: bool,
    device: str,
    quiet: bool,
    steps: int | None,
    init_from: str | Path | None = None,
) -> Path:
    settings = checked_config(config) if isinstance(config, TrainingConfig) else load_training_config(config)
    if steps is not None:
        settings = settings.with_steps(task_name, steps)
    seed = getattr(settings, task_name).seed
    random.seed(seed)  # global states are checkpointed; start them from the config too
    np.random.seed(seed)
    context = init_distributed(device)
    try:
        folder = check_output(
            output,
            resume=resume,
            overwrite=overwrite,
            inputs={"--data": data, "--autoencoder": autoencoder, "--init-from": init_from},
        )
        images = TrainingImages(data, settings.data)  # checks the data before touching the output
        section, config_hash = settings.section(task_name), settings.section_hash(task_name)
        start_model, start_autoencoder = None, None
        if task_name == "autoencoder" and settings.autoencoder.fine_tune == "decoder" and init_from is None:
            raise InvalidParameterError(
                "autoencoder.fine_tune 'decoder' needs init_from (--init-from): the trained autoencoder or model "
                "whose decoder is fine-tuned"
            )
        if init_from is not None and task_name == "autoencoder":
            start_autoencoder = load_start_autoencoder(init_from, settings)
            # recorded as the autoencoder this run depends on, so that --resume checks it is given again
            section = {**section, "init_from": str(init_from), "autoencoder_weights": start_autoencoder[1]}
        elif init_from is not None:
            start_model = _load_init_from(init_from)
            section = {**section, "init_from": str(init_from)}
        if autoencoder is not None:  # every check before the output is touched: the autoencoder too
            section = {**section, "autoencoder_weights": check_autoencoder_folder(autoencoder, settings)}
        if resume:
            check_resumable(
                folder / "checkpoints",
                task=task_name,
                config_hash=config_hash,
                autoencoder=section.get("autoencoder_weights"),
                run_record=folder / "run.json",
                networks=_networks_of(task_name, settings),
            )
        aside = prepare_output(
            folder, section=section, config_hash=config_hash, task=task_name, overwrite=overwrite, context=context
        )
        with replacing_run(folder, aside, context):  # a failed replacement keeps the old run
            if task_name == "autoencoder" and settings.autoencoder.fine_tune == "decoder":
                task = DecoderTask(settings, images, context, folder, *start_autoencoder)
            elif task_name == "autoencoder":
                task = AutoencoderTask(settings, images, context, folder)
                if start_autoencoder is not None:
                    task.checked_module().load_state_dict(start_autoencoder[0].state_dict())
            else:
                task = DiffusionTask(settings, images, autoencoder, context, folder, init_from=start_model)
            section_settings = getattr(settings, task_name)
            return run_training(
                task,
                output=folder,
                total_steps=section_settings.steps,
                checkpoint_every=section_settings.checkpoint_every,
                log_every=section_settings.log_every,
                image_every=section_settings.image_every,
                config_hash=config_hash,
                context=context,
                resume=resume,
                quiet=quiet,
            )
    finally:
        shutdown(context)


def _networks_of(task_name: str, settings: TrainingConfig) -> dict[str, torch.nn.Module]:
    """The network a task's checkpoint holds, built from the configuration on the meta device (names and
    shapes only, no memory), to check the checkpoint before resuming."""
    with torch.device("meta"):
        if task_name == "autoencoder":
            return {"autoencoder": build_autoencoder(settings.autoencoder.network)}
        return {"unet": build_unet(settings.diffusion.network)}


def _load_init_from(init_from: str | Path) -> LatentDiffusionModel:
    from brainsynth.errors import BrainsynthError
    from brainsynth.loading.names import load_model

    try:
        return load_model(init_from)
    except BrainsynthError as exc:
        raise InvalidParameterError(
            f"init_from must be a model name or folder (got {str(init_from)!r}: {exc})"
        ) from exc


def train_autoencoder(
    data: str | Path,
    config: str | Path | TrainingConfig,
    output: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    quiet: bool = False,
    steps: int | None = None,
    init_from: str | Path | None = None,
) -> Path:
    """Train the autoencoder stage.

    Parameters
    ----------
    data : str or Path
        BIDS-like folder with ``participants.tsv`` and ``sub-*/anat/*_T1w.nii.gz``.
    config : str, Path or TrainingConfig
        Preset name (``tiny``, ``demo``, ``paper``) or JSON file.
    output : str or Path
        Run folder: checkpoints, ``log.jsonl``, TensorBoard files and the trained autoencoder.
    resume : bool
        Continue the run in ``output`` from its last checkpoint.
    overwrite : bool
        Replace a run already in ``output``.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``; under ``torchrun`` each process takes its own GPU.
    quiet : bool
        No progress bar.
    steps : int, optional
        Train to this many steps instead of the configuration's (with ``resume``: train longer).
    init_from : str or Path, optional
        A trained autoencoder's run folder or a model (name or folder) whose autoencoder the run starts
        from (same network settings and grid). Needed when the configuration's ``autoencoder.fine_tune``
        is ``"decoder"``: the decoder alone is then trained, so the latents, and any diffusion model
        trained on them, stay valid (:mod:`brainsynth.training.decoder`). Recorded in ``run.json``.

    Returns
    -------
    Path
        ``output/autoencoder.json``.
    """
    return _train(
        "autoencoder",
        data,
        config,
        output,
        autoencoder=None,
        resume=resume,
        overwrite=overwrite,
        device=device,
        quiet=quiet,
        steps=steps,
        init_from=init_from,
    )


def train_diffusion(
    data: str | Path,
    autoencoder: str | Path,
    config: str | Path | TrainingConfig,
    output: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    quiet: bool = False,
    steps: int | None = None,
    init_from: str | Path | None = None,
) -> Path:
    """Train the latent diffusion stage on a trained autoencoder's latents.

    The run folder becomes a brainsynth model folder that :func:`brainsynth.load_model` opens.
    See :func:`train_autoencoder` for the other parameters.

    Parameters
    ----------
    init_from : str or Path, optional
        Fine-tuning: a model (name or folder) whose U-Net weights the run starts from, with a fresh
        optimiser and the configuration's own steps, learning rate and schedule. It must have been
        trained with the same autoencoder, U-Net settings and covariates. Recorded in ``run.json``.
    """
    return _train(
        "diffusion",
        data,
        config,
        output,
        autoencoder=autoencoder,
        resume=resume,
        overwrite=overwrite,
        device=device,
        quiet=quiet,
        steps=steps,
        init_from=init_from,
    )
