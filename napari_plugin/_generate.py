"""The Generate widget: covariate sliders in real units, live sampling, the brain in 3D."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, Container

from brainsynth import SampleResult
from brainsynth.sampling.loop import StepProgress
from napari_plugin._controls import ModelControls, RunControls, SamplingControls
from napari_plugin._layers import brain_layer, latent_preview_affine

if TYPE_CHECKING:
    import napari

PREVIEW_NAME = "brainsynth preview"


class GenerateWidget(Container):
    """Sample one brain from the chosen model and covariates and add it as a 3D Image layer.

    Child widgets are attributes (``model_controls``, ``sampling``, ``run``, ``live_preview``,
    ``decode_preview``, ``resample_on_release``) so they can be set and pressed from code.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer the layers go to.
    model : str, optional
        Model name or folder to start with (default: the first installed, ``demo`` if present).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: str | None = None) -> None:
        self.viewer = napari_viewer
        self.model_controls = ModelControls(model)
        self.sampling = SamplingControls()
        self.live_preview = CheckBox(text="live preview (predicted clean latent)", value=True)
        self.decode_preview = CheckBox(text="decode the preview every step (slower)", value=False)
        self.resample_on_release = CheckBox(text="resample when a slider is released", value=False)
        self.run = RunControls("Generate")
        super().__init__(
            widgets=[
                self.model_controls,
                self.sampling,
                self.live_preview,
                self.decode_preview,
                self.resample_on_release,
                self.run,
            ]
        )
        self.last_result: SampleResult | None = None
        self.last_seconds: float | None = None
        self._started = 0.0
        self.run.run_button.changed.connect(lambda _: self.generate())
        self.model_controls.on_model(self.sampling.use_model_defaults)
        self.resample_on_release.changed.connect(lambda _: self._connect_sliders())
        self.model_controls.covariates.changed.connect(lambda _: self._connect_sliders())

    def generate(self):
        """Start sampling in a worker thread; returns the worker (None when nothing can run)."""
        model = self.model_controls.model
        if model is None or self.run.running:
            return None
        kwargs: dict[str, Any] = {
            "covariates": self.model_controls.values(),
            "seed": int(self.sampling.seed.value),
            "extrapolate": bool(self.model_controls.extrapolate.value),
            **self.sampling.options(),
        }
        self._started = time.perf_counter()
        decode = self.live_preview.value and self.decode_preview.value

        def with_preview(progress: StepProgress):  # runs in the worker thread
            return progress, (model.decode(progress.predicted_clean[:1])[0] if decode else None)

        worker = self.run.start(
            model.sample,
            kwargs,
            kwargs["steps"],
            on_step=self._on_step,
            on_result=self._on_result,
            description="brainsynth sampling",
            per_step=with_preview,
        )
        worker.finished.connect(self._remove_preview)
        return worker

    def _on_step(self, item: tuple[StepProgress, Any]) -> None:
        progress, decoded = item
        if self.run.worker is None or self.run.worker.abort_requested:
            return  # steps still queued after Cancel
        self.run.status.value = f"step {progress.step}/{progress.total}"
        if self.live_preview.value:
            self._show_preview(progress, decoded)

    def _show_preview(self, progress: StepProgress, decoded: Any) -> None:
        model = self.model_controls.model
        if model is None:
            return
        if decoded is not None:
            data, affine = decoded, model.config.affine_array
        else:
            data = progress.predicted_clean[0, 0].detach().float().cpu().numpy()
            factor = model.config.image_shape[0] // model.config.latent_shape[1]
            affine = latent_preview_affine(model.config.affine_array, factor)
        if PREVIEW_NAME in self.viewer.layers:
            layer = self.viewer.layers[PREVIEW_NAME]
            layer.data = data
            layer.reset_contrast_limits()
        else:
            self.viewer.add_image(data, name=PREVIEW_NAME, affine=affine, colormap="gray", rendering="mip")

    def _remove_preview(self) -> None:
        if PREVIEW_NAME in self.viewer.layers:
            self.viewer.layers.remove(PREVIEW_NAME)

    def _on_result(self, result: SampleResult) -> None:
        self._remove_preview()
        data, kwargs, _ = brain_layer(result)
        self.viewer.add_image(data, **kwargs)
        self.viewer.dims.ndisplay = 3
        self.last_result = result
        self.last_seconds = time.perf_counter() - self._started
        self.run.status.value = f"done in {self.last_seconds:.1f} s"

    def _connect_sliders(self) -> None:
        for widget in self.model_controls.covariates:
            if hasattr(widget, "tracking"):
                widget.tracking = not self.resample_on_release.value
            with contextlib.suppress(TypeError, ValueError):  # not connected yet
                widget.changed.disconnect(self._on_slider_released)
            if self.resample_on_release.value:
                widget.changed.connect(self._on_slider_released)

    def _on_slider_released(self, _value: Any) -> None:
        if self.resample_on_release.value:
            self.generate()

    def cancel(self) -> None:
        """Stop sampling at the next step; the preview is removed and no layer is added."""
        self.run.cancel()
        self._remove_preview()
