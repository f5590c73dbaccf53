"""Traverse and Interpolate widgets: sweeps as one 4D layer that napari's dims slider plays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, PushButton, SpinBox

from brainsynth import SampleResult
from brainsynth.controls import MAX_FACE_SEED, covariate_controls
from napari_plugin._controls import ModelControls, RunControls, SamplingControls
from napari_plugin._layers import series_layer

if TYPE_CHECKING:
    import napari


class _SweepWidget(Container):
    """Shared parts: model and covariates, sampling settings, run controls, movie export."""

    run_text = ""

    def _numeric_covariates(self) -> list[tuple[str, str]]:
        """(label with unit, name) of the model's numeric covariates, as the menus show them."""
        controls = getattr(self, "model_controls", None)
        model = controls.model if controls is not None else None
        if model is None:
            return []
        return [(c.label, c.name) for c in covariate_controls(model.config) if not c.categorical]

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: str | None, controls: list) -> None:
        self.viewer = napari_viewer
        self.model_controls = ModelControls(model)
        self.sampling = SamplingControls()
        self.frames = SpinBox(label="frames", min=2, max=64, value=5)
        self.run = RunControls(self.run_text)
        self.movie_path = FileEdit(label="movie", mode="w", filter="*.gif *.mp4", value="")
        self.export_button = PushButton(text="Export movie of the last sweep")
        super().__init__(
            widgets=[
                self.model_controls,
                *controls,
                self.frames,
                self.sampling,
                self.run,
                self.movie_path,
                self.export_button,
            ]
        )
        self.last_layer = None
        self.model_controls.on_model(self.sampling.use_model_defaults)
        self.run.run_button.changed.connect(lambda _: self.start())
        self.export_button.changed.connect(lambda _: self.export_movie(self.movie_path.value))

    def start(self):
        raise NotImplementedError

    def _launch(self, function, kwargs: dict[str, Any], name: str, frame_values: list[Any]):
        model = self.model_controls.model
        total = kwargs["steps"] * -(-len(frame_values) // kwargs.get("batch_size", 1))

        def add(result: SampleResult) -> None:
            data, layer_kwargs, _ = series_layer(result, name, frame_values)
            self.last_layer = self.viewer.add_image(data, **layer_kwargs)
            self.viewer.dims.ndisplay = 3
            self.viewer.dims.set_current_step(0, 0)
            self.run.status.value = f"{len(result)} frames: {name}"

        if model is None or self.run.running:
            return None
        return self.run.start(
            function,
            kwargs,
            total,
            on_step=lambda p: setattr(self.run.status, "value", f"step {p.step}/{p.total}"),
            on_result=add,
            description=name,
        )

    def export_movie(self, path: str | Path, fps: int = 4) -> Path | None:
        """Write the last sweep as a GIF or MP4: one 3D screenshot of the canvas per frame."""
        import imageio.v2 as imageio

        path = Path(path)
        if self.last_layer is None or str(path) in ("", "."):
            return None
        frames = []
        for index in range(self.last_layer.data.shape[0]):
            self.viewer.dims.set_current_step(0, index)
            frames.append(self.viewer.screenshot(canvas_only=True, flash=False))
        if path.suffix.lower() == ".gif":
            imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
        else:
            imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
        self.run.report(f"wrote {path}")
        return path


def numeric_covariates(model) -> list[str]:
    """Names of a model's numeric covariates (those a sweep can vary); none without a model."""
    return [] if model is None else [c.name for c in model.config.covariates if not c.categorical]


class TraverseWidget(_SweepWidget):
    """Sweep one covariate over a range with the same noise and other covariates (one 4D layer).

    Attributes ``covariate``, ``start_value``, ``stop_value``, ``frames`` and ``seed`` hold the sweep.
    """

    run_text = "Traverse"

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: str | None = None) -> None:
        # Choices are read from the model whenever napari resets them (it does so as layers change), so
        # they are never replaced by the empty list a widget starts with.
        self.covariate = ComboBox(label="sweep", choices=lambda _: self._numeric_covariates())
        self.start_value = FloatSpinBox(label="from", min=-1e7, max=1e7, value=0.0)
        self.stop_value = FloatSpinBox(label="to", min=-1e7, max=1e7, value=1.0)
        super().__init__(napari_viewer, model, [self.covariate, self.start_value, self.stop_value])
        self.covariate.changed.connect(lambda _: self._default_range())
        self.model_controls.on_model(self._sweepable)

    def _sweepable(self, model) -> None:
        names = numeric_covariates(model)
        self.covariate.reset_choices()
        if names:
            self.covariate.value = names[0]  # the model's first numeric covariate
            self._default_range()

    def _default_range(self) -> None:
        model = self.model_controls.model
        if model is not None and self.covariate.value:
            spec = model.config.covariate(self.covariate.value)
            self.start_value.value, self.stop_value.value = spec.low, spec.high

    def start(self):
        model = self.model_controls.model
        if model is None or not self.covariate.value:
            return None
        name = self.covariate.value
        values = [float(v) for v in np.linspace(self.start_value.value, self.stop_value.value, self.frames.value)]
        others = {k: v for k, v in self.model_controls.values().items() if k != name}
        kwargs = {
            "covariate": name,
            "values": values,
            "seed": int(self.sampling.seed.value),
            "extrapolate": bool(self.model_controls.extrapolate.value),
            **self.sampling.options(),
            **others,
        }
        spec = model.config.covariate(name)
        label = f"{name} {values[0]:g}-{values[-1]:g} {spec.unit} seed {kwargs['seed']}"
        return self._launch(model.traverse, kwargs, label, values)


class InterpolateWidget(_SweepWidget):
    """Interpolate from seed A to seed B (and the covariates to an optional second set) as one 4D layer.

    The covariates at the start come from the covariate controls; ``age_end`` style targets are not
    needed for seeds, so the end covariates equal the start unless ``vary`` names one to change.
    """

    run_text = "Interpolate"

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: str | None = None) -> None:
        self.seed_a = SpinBox(label="seed A", min=0, max=MAX_FACE_SEED, value=0)
        self.seed_b = SpinBox(label="seed B", min=0, max=MAX_FACE_SEED, value=1)
        self.vary = ComboBox(
            label="also vary", choices=lambda _: [("(none)", "(none)"), *self._numeric_covariates()], value="(none)"
        )
        self.vary_to = FloatSpinBox(label="to", min=-1e7, max=1e7, value=0.0)
        super().__init__(napari_viewer, model, [self.seed_a, self.seed_b, self.vary, self.vary_to])
        self.model_controls.on_model(self._varyable)

    def _varyable(self, model) -> None:
        self.vary.reset_choices()

    def start(self):
        model = self.model_controls.model
        if model is None:
            return None
        start = self.model_controls.values()
        end = dict(start)
        if self.vary.value != "(none)":
            end[self.vary.value] = float(self.vary_to.value)
        frames = int(self.frames.value)
        kwargs = {
            "seed_a": int(self.seed_a.value),
            "seed_b": int(self.seed_b.value),
            "frames": frames,
            "covariates_a": start,
            "covariates_b": end,
            "extrapolate": bool(self.model_controls.extrapolate.value),
            **self.sampling.options(),
        }
        label = f"seed {kwargs['seed_a']} to {kwargs['seed_b']}"
        return self._launch(model.interpolate, kwargs, label, [round(t, 4) for t in np.linspace(0, 1, frames)])
