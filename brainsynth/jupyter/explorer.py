"""The Jupyter explorer: the napari controls as ipywidgets, with orthogonal slices of the result."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from brainsynth.controls import CovariateControl, covariate_controls, result_title, sampling_limits
from brainsynth.devices import available_devices
from brainsynth.errors import BrainsynthError, SamplingCancelled
from brainsynth.jupyter.running import BackgroundRun
from brainsynth.loading.names import load_model
from brainsynth.model import LatentDiffusionModel
from brainsynth.result import SampleResult
from brainsynth.sampling.loop import StepProgress
from brainsynth.sampling.schedulers import SCHEDULERS

#: Least seconds between two live previews in the 3D view (each sends a volume to the page).
PREVIEW_INTERVAL_S = 1.0


def covariate_widget(control: CovariateControl) -> widgets.Widget:
    """A dropdown for a categorical covariate, else a slider in real units (see :mod:`brainsynth.controls`)."""
    style = {"description_width": "150px"}
    if control.categorical:
        return widgets.Dropdown(
            options=list(control.choices), value=control.value, description=control.label, style=style
        )
    return widgets.FloatSlider(
        value=control.value,
        min=control.low,
        max=control.high,
        step=control.step,
        description=control.label,
        style=style,
        continuous_update=False,
        layout=widgets.Layout(width="480px"),
    )


class Explorer:
    """Covariate controls, sampling settings, Generate/Cancel with progress, and slice views.

    Parameters
    ----------
    model : str, Path or LatentDiffusionModel
        Model name, folder or loaded model (default ``"demo"``).
    view3d : bool, optional
        Show the brain in 3D (NiiVue: a volume rendering and three linked slices in world coordinates,
        with the live preview while sampling). Default: wherever ipyniivue is installed.

    Attributes
    ----------
    result : SampleResult or None
        The last generated brain.
    covariates : dict
        The covariate widgets by name; ``seed``, ``steps``, ``scheduler``, ``device``, ``extrapolate``,
        ``generate_button``, ``cancel_button``, ``progress``, ``status`` and ``slice_sliders`` are the
        other controls.

    Examples
    --------
    >>> explorer = Explorer("demo")  # doctest: +SKIP
    >>> explorer                      # shows the controls in a notebook  # doctest: +SKIP
    >>> explorer.covariates["age"].value = 75  # doctest: +SKIP
    >>> explorer.generate(wait=True).save("brain.nii.gz")  # doctest: +SKIP
    """

    def __init__(self, model: str | Path | LatentDiffusionModel = "demo", *, view3d: bool | None = None) -> None:
        self.model = model if isinstance(model, LatentDiffusionModel) else load_model(model)
        if view3d is None:  # the 3D view wherever ipyniivue is installed
            import importlib.util

            view3d = importlib.util.find_spec("ipyniivue") is not None
        config = self.model.config
        self.extrapolate = widgets.Checkbox(value=False, description="extrapolate beyond the training range")
        self.covariates: dict[str, widgets.Widget] = {}
        self.covariate_box = widgets.VBox()
        self._build_covariates()
        limits = sampling_limits(config)
        self.seed = widgets.BoundedIntText(value=0, min=0, max=limits.max_seed, description="seed")
        self.random_seed = widgets.Button(description="random seed")
        self.steps = widgets.BoundedIntText(
            value=limits.default_steps, min=1, max=limits.max_steps, description="steps"
        )
        self.scheduler = widgets.Dropdown(
            options=list(SCHEDULERS), value=config.default_scheduler, description="scheduler"
        )
        self.guidance = widgets.FloatSlider(
            value=limits.guidance_default,
            min=1.0,
            max=limits.guidance_max,
            step=limits.guidance_step,
            description="guidance",
            disabled=not limits.guidance_enabled,
            tooltip="classifier-free guidance: above 1 follows the covariates "
            "more closely (models trained with conditioning dropout)",
        )
        self.device = widgets.Dropdown(options=["auto", *available_devices()], value="auto", description="device")
        self.generate_button = widgets.Button(description="Generate", button_style="primary")
        self.cancel_button = widgets.Button(description="Cancel", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=config.default_steps, description="sampling")
        self.status = widgets.Label(value="")
        self.slice_sliders = {
            axis: widgets.IntSlider(value=size // 2, min=0, max=size - 1, description=axis, continuous_update=False)
            for axis, size in zip("xyz", config.image_shape, strict=True)
        }
        self.view = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.view3d = None
        if view3d:
            from brainsynth.jupyter.volume3d import BrainView

            self.view3d = BrainView()
        self._previewed = 0.0
        self.result: SampleResult | None = None
        self._runner = BackgroundRun("brainsynth-explorer")
        self.random_seed.on_click(lambda _: setattr(self.seed, "value", random.randint(0, limits.max_seed)))
        self.generate_button.on_click(lambda _: self.generate())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.extrapolate.observe(lambda _: self._build_covariates(), names="value")
        for slider in self.slice_sliders.values():
            slider.observe(lambda _: self.draw(), names="value")
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<b>brainsynth</b>: {config.name}"),
                self.covariate_box,
                self.extrapolate,
                widgets.HBox([self.seed, self.random_seed]),
                widgets.HBox([self.steps, self.scheduler, self.device]),
                self.guidance,
                widgets.HBox([self.generate_button, self.cancel_button, self.progress, self.status]),
                *([self.view3d.widget] if self.view3d is not None else []),
                widgets.HBox(list(self.slice_sliders.values())),
                self.view,
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _build_covariates(self) -> None:
        previous = {name: w.value for name, w in self.covariates.items()}
        self.covariates = {
            c.name: covariate_widget(c) for c in covariate_controls(self.model.config, self.extrapolate.value)
        }
        for name, value in previous.items():
            widget = self.covariates[name]
            if isinstance(widget, widgets.FloatSlider):
                widget.value = min(max(value, widget.min), widget.max)
        self.covariate_box.children = list(self.covariates.values())

    def values(self) -> dict[str, Any]:
        """Covariate values in real units, by name."""
        return {name: widget.value for name, widget in self.covariates.items()}

    def generate(self, wait: bool = False) -> SampleResult | None:
        """Sample with the current settings; in a background thread unless ``wait``.

        Returns the result when ``wait`` is true (None if cancelled), else None at once.
        """
        if self._runner.running:
            return None
        self.progress.max, self.progress.value = int(self.steps.value), 0
        self.generate_button.disabled, self.cancel_button.disabled = True, False
        self.status.value = "sampling..."
        self._runner.start(self._run, wait=wait)
        return self.result if wait else None

    def wait(self, timeout: float | None = None) -> SampleResult | None:
        """Wait for a background run to end and return the result."""
        self._runner.wait(timeout)
        return self.result

    def cancel(self) -> None:
        """Stop sampling at the next step; the previous result stays."""
        self._runner.cancel()

    def _on_step(self, progress: StepProgress) -> None:
        self.progress.value = progress.step
        now = time.monotonic()
        if self.view3d is not None and now - self._previewed >= PREVIEW_INTERVAL_S:
            self._previewed = now  # the predicted clean latent, at the latent grid, as it emerges
            config = self.model.config
            factor = config.image_shape[0] // config.latent_shape[1]
            scale = np.diag([factor, factor, factor, 1.0])
            scale[:3, 3] = (factor - 1) / 2.0
            preview = progress.predicted_clean[0, 0].detach().float().cpu().numpy()
            self.view3d.show(preview, config.affine_array @ scale, title=f"preview at step {progress.step}")

    def _run(self) -> None:
        try:
            result = self.model.sample(
                self.values(),
                seed=int(self.seed.value),
                steps=int(self.steps.value),
                scheduler=self.scheduler.value,
                device=self.device.value,
                guidance=float(self.guidance.value),
                extrapolate=bool(self.extrapolate.value),
                callback=self._runner.cancellation.watch(self._on_step),
            )
        except SamplingCancelled:
            self.status.value = "cancelled"
        except BrainsynthError as error:
            self.status.value = f"error: {error}"
        else:
            self.result = result
            self.draw()
            if self.view3d is not None:
                self.view3d.show(result.volume, result.affine, title=_title(result), limits=(0.0, 1.0))
            self.status.value = f"done in {result.provenance['time_taken_s']:.1f} s"
        finally:
            self.generate_button.disabled, self.cancel_button.disabled = False, True

    def figure(self) -> plt.Figure | None:
        """Orthogonal slices of the current result at the slider positions (None before the first run)."""
        if self.result is None:
            return None
        from brainsynth.jupyter.views import orthogonal_slices

        positions = tuple(self.slice_sliders[a].value for a in "xyz")
        return orthogonal_slices(self.result.volume, positions, title=_title(self.result))

    def draw(self) -> None:
        """Redraw the slice view.

        The figure goes to an Image widget as PNG bytes: a widget's value reaches the page from the
        sampling thread too, which output captured in an Output widget does not.
        """
        figure = self.figure()
        if figure is None:
            return
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=figure.dpi)
        plt.close(figure)
        self.view.value = buffer.getvalue()

    def save(self, path: str | Path, **options: Any) -> list[Path]:
        """Save the current result as NIfTI with its sidecar (see :meth:`SampleResult.save`)."""
        if self.result is None:
            raise BrainsynthError("nothing to save yet: generate a brain first")
        return self.result.save(path, **options)


def _title(result: SampleResult) -> str:
    return result_title(result.covariates[0], result.seeds[0])
