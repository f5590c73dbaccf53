"""Controls shared by the widgets: model choice, covariates in real units, sampling settings, workers."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSlider, Label, PushButton, SpinBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from brainsynth import LatentDiffusionModel, SamplingCancelled
from brainsynth.controls import (
    GUIDANCE_SLIDER_MAX,
    MAX_FACE_SEED,
    CovariateControl,
    covariate_controls,
    sampling_limits,
)
from brainsynth.devices import available_devices
from brainsynth.sampling.schedulers import SCHEDULERS
from brainsynth.sampling.stepping import iterate_steps
from napari_plugin._models import available_models, get_model

FOLDER_CHOICE = "folder..."


def covariate_widget(control: CovariateControl):
    """A ComboBox for a categorical covariate, else a slider in real units (see :mod:`brainsynth.controls`)."""
    if control.categorical:
        return ComboBox(name=control.name, label=control.label, choices=list(control.choices), value=control.value)
    return FloatSlider(
        name=control.name,
        label=control.label,
        min=control.low,
        max=control.high,
        value=control.value,
        step=control.step,
    )


class ModelControls(Container):
    """Model choice (installed names or a folder), covariate controls rebuilt for each model."""

    def __init__(self, model: str | None = None) -> None:
        names = available_models()
        choices = [*names, FOLDER_CHOICE]
        initial = model if model in names else (FOLDER_CHOICE if model else choices[0])
        self.model_choice = ComboBox(label="model", choices=choices, value=initial)
        self.model_folder = FileEdit(label="folder", mode="d", value=model if initial == FOLDER_CHOICE else "")
        self.model_folder.visible = initial == FOLDER_CHOICE
        self.extrapolate = CheckBox(text="extrapolate beyond the training range", value=False)
        self.covariates = Container(labels=True)
        super().__init__(widgets=[self.model_choice, self.model_folder, self.covariates, self.extrapolate])
        self.model: LatentDiffusionModel | None = None
        self.listeners: list[Callable[[LatentDiffusionModel | None], None]] = []
        self.rebuilt: list[Callable[[], None]] = []  # called whenever the covariate controls are made anew
        self.model_choice.changed.connect(self._on_model_choice)
        self.model_folder.changed.connect(lambda _: self.load())
        self.extrapolate.changed.connect(lambda _: self._build_covariates())
        self.load()

    def _on_model_choice(self, value: str) -> None:
        self.model_folder.visible = value == FOLDER_CHOICE
        self.load()

    @property
    def model_name(self) -> str:
        if self.model_choice.value == FOLDER_CHOICE:
            return str(self.model_folder.value)
        return str(self.model_choice.value)

    def load(self) -> LatentDiffusionModel | None:
        """Load the chosen model; errors become notifications and leave no model selected."""
        name = self.model_name
        if not name or name in (FOLDER_CHOICE, "."):
            self.model = None
        else:
            try:
                self.model = get_model(name)
            except Exception as error:  # shown to the user; the viewer stays usable
                self.model = None
                show_error(f"brainsynth: {error}")
        self._build_covariates()
        for listener in self.listeners:
            listener(self.model)
        return self.model

    def on_model(self, listener: Callable[[LatentDiffusionModel | None], None]) -> None:
        """Call ``listener(model)`` now and whenever another model is loaded."""
        self.listeners.append(listener)
        listener(self.model)

    def _build_covariates(self) -> None:
        self.covariates.clear()
        if self.model is None:
            return
        for control in covariate_controls(self.model.config, self.extrapolate.value):
            self.covariates.append(covariate_widget(control))
        for listener in self.rebuilt:
            listener()

    def values(self) -> dict[str, Any]:
        """Covariate values in real units, by name."""
        return {widget.name: widget.value for widget in self.covariates}


class SamplingControls(Container):
    """Seed (with a random button), steps, scheduler, guidance and device."""

    def __init__(self, default_steps: int = 50, default_scheduler: str = "ddim") -> None:
        self.seed = SpinBox(label="seed", min=0, max=MAX_FACE_SEED, value=0)
        self.random_seed = PushButton(text="random seed")
        self.steps = SpinBox(label="steps", min=1, max=1000, value=default_steps)
        self.scheduler = ComboBox(label="scheduler", choices=list(SCHEDULERS), value=default_scheduler)
        self.guidance = FloatSlider(
            label="guidance",
            min=1.0,
            max=GUIDANCE_SLIDER_MAX,
            step=0.25,
            value=1.0,
            tooltip="classifier-free guidance: above 1 follows the covariates more closely "
            "(models trained with conditioning dropout)",
        )
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        super().__init__(widgets=[self.seed, self.random_seed, self.steps, self.scheduler, self.guidance, self.device])
        self.random_seed.changed.connect(lambda _: setattr(self.seed, "value", random.randint(0, MAX_FACE_SEED)))

    def use_model_defaults(self, model: LatentDiffusionModel | None) -> None:
        if model is not None:
            limits = sampling_limits(model.config)
            self.steps.max = limits.max_steps
            self.steps.value = limits.default_steps
            self.scheduler.value = limits.default_scheduler
            self.guidance.max = limits.guidance_max
            self.guidance.value = limits.guidance_default
            self.guidance.enabled = limits.guidance_enabled

    def options(self) -> dict[str, Any]:
        return {
            "steps": int(self.steps.value),
            "scheduler": self.scheduler.value,
            "device": self.device.value,
            "guidance": float(self.guidance.value),
        }


class RunControls(Container):
    """Run and Cancel buttons and a status line around one generator worker at a time."""

    def __init__(self, run_text: str) -> None:
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        super().__init__(widgets=[self.run_button, self.cancel_button, self.status])
        self.worker = None
        self.cancel_button.changed.connect(lambda _: self.cancel())

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(
        self,
        function: Callable[..., Any],
        kwargs: dict[str, Any],
        total: int,
        *,
        on_step: Callable[[Any], None],
        on_result: Callable[[Any], None],
        description: str,
        per_step: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Run ``function(**kwargs, callback=...)`` in a generator worker that yields every step.

        ``per_step`` runs in the worker thread on each step's progress (e.g. a preview decode) and its
        result is what ``on_step`` receives.
        """

        running: list = []

        def work():
            steps = iterate_steps(function, **kwargs)
            running.append(steps)
            try:
                while True:
                    progress = next(steps)
                    yield per_step(progress) if per_step else progress
            except StopIteration as stop:
                return stop.value
            finally:
                steps.close()

        worker = create_worker(work, _progress={"total": total, "desc": description}, _start_thread=False)
        worker.yielded.connect(on_step)
        worker.returned.connect(on_result)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(lambda: self._set_status("cancelled; nothing was added"))
        worker.finished.connect(self._on_finished)
        # A cancelled worker stops iterating but leaves its generator open: close it, so that the call
        # stops at its next step instead of running on unseen in its thread.
        worker.finished.connect(lambda: [steps.close() for steps in running])
        self.worker = worker
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self._set_status(f"{description}...")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running worker at its next step."""
        if self.worker is not None:
            self.worker.quit()

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, SamplingCancelled):
            self._set_status("cancelled; nothing was added")
            return
        self._set_status(f"error: {error}")
        show_error(f"brainsynth: {error}")

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def report(self, text: str) -> None:
        self._set_status(text)
        show_info(f"brainsynth: {text}")
