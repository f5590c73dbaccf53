"""The Edit widget: a subject's scan (any 3D image layer) edited towards new covariates, in its own space."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, Label, SpinBox
from napari.utils.colormaps import Colormap

from brainsynth.controls import covariate_controls
from brainsynth.devices import available_devices
from brainsynth.scans.editing import EDIT_STEPS, EDIT_STRENGTH, measurable_covariates
from brainsynth.scans.results import EditResult
from brainsynth.scans.session import EditSession, traversal_targets
from napari_plugin._controls import ModelControls, RunControls, covariate_widget
from napari_plugin._io import _world_matrix, layer_affine

if TYPE_CHECKING:
    import napari

NO_TRAVERSAL = "(none)"

#: Signed change: blue where the edit darkens the scan, transparent at zero, red where it brightens.
DIFFERENCE_COLORMAP = Colormap(
    colors=[[0.1, 0.45, 1.0, 1.0], [0.1, 0.45, 1.0, 0.0], [1.0, 0.25, 0.1, 0.0], [1.0, 0.25, 0.1, 1.0]],
    controls=[0.0, 0.49, 0.51, 1.0],
    name="brainsynth difference",
)


def layer_world_matrix(layer) -> np.ndarray:
    """A 3D layer's data-to-world matrix (RAS mm): its affine after its scale, rotation, shear, translation."""
    attributes = {
        "affine": layer.affine.affine_matrix,
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
    }
    return _world_matrix(attributes, 3)


class EditWidget(Container):
    """Edit the scan of an image layer: its own covariates, the targets, strength and steps; Run and Cancel.

    The targets start at the scan's own covariates and follow them (measured values included) until
    moved: only the covariates moved are changed. The scan is registered at the first edit and its
    inversion kept per (own covariates, strength, steps): moving only the targets and pressing Edit
    again costs the regeneration alone. Results are
    layers over the scan in its own coordinates: the edited scan and the signed difference (blue darker,
    red brighter, clear where nothing changed). With ``traverse`` set, one 4D layer pair goes from the
    scan's own value to the target in ``frames`` steps (the other covariates kept the scan's own), played by
    the dims slider.

    Child widgets are attributes (``scan_layer``, ``source``, ``measure``, ``model_controls`` (the
    targets), ``strength``, ``steps``, ``traverse``, ``frames``, ``run``) so they can be set from code.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose image layers can be edited.
    model : str, optional
        Model name or folder to start with.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, model: str | None = None) -> None:
        self.viewer = napari_viewer
        self.scan_layer = ComboBox(label="scan", choices=self._image_layers)
        self.source_label = Label(value="the scan's own covariates")
        self.source = Container(labels=True)
        self.measure = CheckBox(text="measure the volumes in the scan", value=True)
        self.target_label = Label(value="edit towards")
        self.model_controls = ModelControls(model)
        self.strength = FloatSlider(
            label="strength",
            min=0.05,
            max=1.0,
            step=0.05,
            value=EDIT_STRENGTH,
            tooltip="share of the steps inverted: lower keeps more of the scan, 1 regenerates it from noise",
        )
        self.steps = SpinBox(label="steps", min=2, max=1000, value=EDIT_STEPS)
        self.transform = ComboBox(label="registration", choices=["rigid", "affine"], value="rigid")
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        self.traverse = ComboBox(label="traverse", choices=lambda _: self._traversable())
        self.frames = SpinBox(label="frames", min=2, max=32, value=5)
        self.run = RunControls("Edit")
        super().__init__(
            widgets=[
                self.scan_layer,
                self.source_label,
                self.source,
                self.measure,
                self.target_label,
                self.model_controls,
                self.strength,
                self.steps,
                self.transform,
                self.device,
                self.traverse,
                self.frames,
                self.run,
            ]
        )
        self.sessions: dict[tuple, EditSession] = {}
        self.last_result: EditResult | None = None
        self.last_layers: list = []
        self.last_seconds: float | None = None
        self._started = 0.0
        self.moved: set[str] = set()  # target controls the user moved (the others follow the scan's own)
        self._following = False
        self.model_controls.rebuilt.append(self._watch_targets)
        self.model_controls.on_model(self._on_model)
        self.measure.changed.connect(lambda _: self._enable_source())
        self.run.run_button.changed.connect(lambda _: self.start())
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda _: self.scan_layer.reset_choices())

    # ----------------------------------------------------------------------------------- choices

    def _image_layers(self, _widget=None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image) and layer.ndim == 3]

    def _traversable(self) -> list[tuple[str, str]]:
        model = getattr(getattr(self, "model_controls", None), "model", None)
        if model is None:
            return [(NO_TRAVERSAL, NO_TRAVERSAL)]
        numeric = [(c.label, c.name) for c in covariate_controls(model.config) if not c.categorical]
        return [(NO_TRAVERSAL, NO_TRAVERSAL), *numeric]

    def _on_model(self, model) -> None:
        self.source.clear()
        if model is not None:
            for control in covariate_controls(model.config, extrapolate=True):
                widget = covariate_widget(control)
                widget.changed.connect(lambda _: self._follow_source())
                self.source.append(widget)
            measurable = measurable_covariates(model)
            self.measure.text = f"measure {', '.join(measurable).replace('_', ' ')} in the scan"
            self.measure.visible = bool(measurable)
        self.traverse.reset_choices()
        self.traverse.value = NO_TRAVERSAL
        self._enable_source()
        self._watch_targets()

    def _watch_targets(self) -> None:
        self.moved.clear()
        for widget in self.model_controls.covariates:
            widget.changed.connect(lambda _, name=widget.name: self._moved(name))
        self._follow_source()

    def _moved(self, name: str) -> None:
        if not self._following:
            self.moved.add(name)

    def _follow_source(self) -> None:
        """Set the targets not moved to the scan's own values."""
        own = {widget.name: widget.value for widget in self.source}
        self._following = True
        try:
            for widget in self.model_controls.covariates:
                if widget.name not in self.moved and widget.name in own:
                    value = own[widget.name]
                    if not isinstance(value, str):
                        widget.min, widget.max = min(widget.min, value), max(widget.max, value)
                    widget.value = value
        finally:
            self._following = False

    def _enable_source(self) -> None:
        model = self.model_controls.model
        measured = set(measurable_covariates(model)) if model is not None and self.measure.value else set()
        for widget in self.source:
            widget.enabled = widget.name not in measured

    # ----------------------------------------------------------------------------------- editing

    def source_values(self) -> dict[str, Any]:
        """The scan's own covariates the widget gives (those measured in the scan left out)."""
        return {widget.name: widget.value for widget in self.source if widget.enabled}

    def targets(self) -> list[dict[str, Any]]:
        """One target per edit: the target controls moved, or a traversal of one covariate from the scan's value."""
        values = self.model_controls.values()
        name = self.traverse.value
        if name in (None, NO_TRAVERSAL):
            return [{k: v for k, v in values.items() if k in self.moved}]
        return traversal_targets(name, self.source[name].value, values[name], self.frames.value)

    def session(self) -> EditSession | None:
        """The edit session of the chosen layer, model and registration (kept, so its inversions are reused)."""
        layer, model = self.scan_layer.value, self.model_controls.model
        if layer is None or model is None:
            return None
        key = (id(layer), id(layer.data), id(model), self.transform.value)
        if key not in self.sessions:
            self.sessions[key] = EditSession(
                np.asarray(layer.data),
                layer_world_matrix(layer),
                model,
                name=layer.name,
                transform=self.transform.value,
            )
        return self.sessions[key]

    def start(self):
        """Start the edit in a worker thread; returns the worker (None when nothing can run)."""
        session = self.session()
        if session is None or self.run.running:
            if session is None:
                self.run.report("choose a 3D image layer and a model first")
            return None
        targets = self.targets()
        if targets == [{}]:
            self.run.report("move a target control first: the edit changes only the covariates moved")
            return None
        source, strength, steps = self.source_values(), float(self.strength.value), int(self.steps.value)
        kwargs = {
            "targets": targets,
            "source": source,
            "strength": strength,
            "steps": steps,
            "device": self.device.value,
            "extrapolate": bool(self.model_controls.extrapolate.value),
        }
        try:
            total = session.total_steps(source, strength, steps)
        except Exception as error:  # shown to the user; the viewer stays usable
            self.run._on_error(error)
            return None
        self._started = time.perf_counter()
        layer = self.scan_layer.value
        return self.run.start(
            session.edit,
            kwargs,
            total,
            on_step=lambda p: setattr(self.run.status, "value", f"step {p.step}/{p.total}"),
            on_result=lambda result: self._add_layers(result, layer, session),
            description=f"brainsynth editing {layer.name}",
        )

    def _add_layers(self, result: EditResult, layer, session: EditSession) -> None:
        world = session.affine
        single = len(result) == 1
        edited = result.on_scan[0] if single else result.on_scan
        change = result.differences_on_scan[0] if single else result.differences_on_scan
        affine = world if single else layer_affine(world, 4)
        name = f"{layer.name} edited" if single else f"{layer.name} {self.traverse.value} traversal"
        sidecars = [result.sidecar(i) for i in range(len(result))]
        metadata = {"brainsynth": sidecars[0] if single else {**sidecars[0], "frames": sidecars}}
        span = float(np.percentile(np.abs(change[change != 0]), 99.5)) if np.any(change) else 1.0
        added = [
            self.viewer.add_image(
                edited,
                name=name,
                affine=affine,
                colormap="gray",
                contrast_limits=tuple(layer.contrast_limits),
                metadata=metadata,
            ),
            self.viewer.add_image(
                change,
                name=f"{name} difference",
                affine=affine,
                colormap=DIFFERENCE_COLORMAP,
                contrast_limits=(-span, span),
                blending="translucent",
                metadata=metadata,
            ),
        ]
        self._show_source(result)
        self.last_result, self.last_layers = result, added
        self.last_seconds = time.perf_counter() - self._started
        if not single:
            self.viewer.dims.set_current_step(0, 0)
        self.run.status.value = (
            f"done in {self.last_seconds:.1f} s (round trip {result.roundtrip_psnr_db:.1f} dB; "
            f"{session.inversions} inversion{'s' if session.inversions != 1 else ''} so far)"
        )

    def _show_source(self, result: EditResult) -> None:
        """Put what was measured in the scan into the source controls (left disabled while measured)."""
        for widget in self.source:
            if widget.name in result.source_measured:
                value = float(result.source[widget.name])
                widget.min, widget.max = min(widget.min, value), max(widget.max, value)
                widget.value = value
        self._follow_source()

    def cancel(self) -> None:
        """Stop the edit at its next step; no layer is added and nothing half-done is kept."""
        self.run.cancel()
