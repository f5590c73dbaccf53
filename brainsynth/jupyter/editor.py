"""The Jupyter scan editor: the napari Edit widget's controls as ipywidgets, before / after / change."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from brainsynth.controls import covariate_controls
from brainsynth.devices import available_devices
from brainsynth.errors import BrainsynthError, SamplingCancelled
from brainsynth.files.nifti import load_nifti
from brainsynth.jupyter.explorer import covariate_widget
from brainsynth.jupyter.running import BackgroundRun
from brainsynth.loading.names import load_model
from brainsynth.model import LatentDiffusionModel
from brainsynth.sampling.loop import StepProgress
from brainsynth.scans.editing import EDIT_STEPS, EDIT_STRENGTH, measurable_covariates
from brainsynth.scans.results import EditResult
from brainsynth.scans.session import EditSession, traversal_targets

NO_TRAVERSAL = "(none)"


class ScanEditor:
    """Edit a subject's scan in a notebook: its own covariates, targets, strength, steps; Edit and Cancel.

    The targets start at the scan's own covariates; only those moved are changed. The registration and
    the inversion are kept (an :class:`~brainsynth.scans.session.EditSession`): after the first edit,
    moving only the targets costs the regeneration alone. The view shows the scan, the edit and the
    signed change side by side with the volumes measured in each; a traversal gets a frame slider.

    Parameters
    ----------
    scan : str, Path or (numpy.ndarray, numpy.ndarray)
        A NIfTI path, or an image and its (4, 4) affine.
    model : str, Path or LatentDiffusionModel
        Model name, folder or loaded model (default ``"demo"``).
    source : dict, optional
        The scan's own covariates to start from (e.g. ``{"sex": "female", "age": 27}``).
    view3d : bool, optional
        Also show the edited scan in 3D with the change over it (NiiVue). Default: wherever ipyniivue
        is installed.

    Attributes
    ----------
    result : EditResult or None
        The last edit.
    session : EditSession
        What is kept between edits (``session.inversions`` counts the inversions run).
    source, targets : dict
        The covariate widgets by name; ``measure``, ``extrapolate``, ``strength``, ``steps``, ``device``,
        ``traverse``, ``frames``, ``edit_button``, ``cancel_button``, ``progress``, ``status``, ``frame``
        and ``view`` are the other controls.

    Examples
    --------
    >>> colin = "/usr/share/mricron/templates/ch2bet.nii.gz"
    >>> editor = ScanEditor(colin, source={"sex": "female", "age": 27})  # doctest: +SKIP
    >>> editor.targets["age"].value = 75  # doctest: +SKIP
    >>> editor.edit(wait=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        scan: str | Path | tuple[np.ndarray, np.ndarray],
        model: str | Path | LatentDiffusionModel = "demo",
        *,
        source: dict[str, Any] | None = None,
        view3d: bool | None = None,
    ) -> None:
        self.model = model if isinstance(model, LatentDiffusionModel) else load_model(model)
        if view3d is None:  # the 3D view wherever ipyniivue is installed
            import importlib.util

            view3d = importlib.util.find_spec("ipyniivue") is not None
        if isinstance(scan, (str, Path)):
            volume, affine, _ = load_nifti(scan)
            name = str(scan)
        else:
            volume, affine = scan
            name = "image"
        self.session = EditSession(np.asarray(volume), affine, self.model, name=name)
        config = self.model.config
        style = {"description_width": "150px"}
        measurable = measurable_covariates(self.model)
        self.measure = widgets.Checkbox(
            value=bool(measurable),
            description=f"measure {', '.join(measurable).replace('_', ' ')} in the scan",
            layout=widgets.Layout(display="" if measurable else "none", width="480px"),
            indent=False,
        )
        self.extrapolate = widgets.Checkbox(
            value=False,
            description="extrapolate the targets beyond the training range",
            indent=False,
            layout=widgets.Layout(width="480px"),
        )
        self.source = {c.name: covariate_widget(c) for c in covariate_controls(config, extrapolate=True)}
        self.targets = {c.name: covariate_widget(c) for c in covariate_controls(config, extrapolate=True)}
        for name, value in (source or {}).items():
            if name in self.source:
                self.source[name].value = value
        self.moved: set[str] = set()
        self._following = False
        self.strength = widgets.FloatSlider(
            value=EDIT_STRENGTH, min=0.05, max=1.0, step=0.05, description="strength", style=style
        )
        self.steps = widgets.BoundedIntText(value=EDIT_STEPS, min=2, max=1000, description="steps")
        self.device = widgets.Dropdown(options=["auto", *available_devices()], value="auto", description="device")
        numeric = [c.name for c in covariate_controls(config) if not c.categorical]
        self.traverse = widgets.Dropdown(options=[NO_TRAVERSAL, *numeric], value=NO_TRAVERSAL, description="traverse")
        self.frames = widgets.BoundedIntText(value=5, min=2, max=32, description="frames")
        self.edit_button = widgets.Button(description="Edit", button_style="primary")
        self.cancel_button = widgets.Button(description="Cancel", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="editing")
        self.status = widgets.Label(value="")
        self.frame = widgets.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=False)
        self.view = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.view3d = None
        if view3d:
            from brainsynth.jupyter.volume3d import BrainView

            self.view3d = BrainView()
        self.result: EditResult | None = None
        self._runner = BackgroundRun("brainsynth-editor")
        for widget in self.source.values():
            widget.observe(lambda _: self._follow_source(), names="value")
        for name, widget in self.targets.items():
            widget.observe(lambda _, name=name: self._moved(name), names="value")
        self.measure.observe(lambda _: self._enable_source(), names="value")
        self.edit_button.on_click(lambda _: self.edit())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.frame.observe(lambda _: self.draw(), names="value")
        self._enable_source()
        self._follow_source()
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<b>brainsynth</b>: edit {self.session.name} with {config.name}"),
                widgets.HTML("<i>the scan's own covariates</i>"),
                *self.source.values(),
                self.measure,
                widgets.HTML("<i>edit towards</i> (only the covariates moved change)"),
                *self.targets.values(),
                self.extrapolate,
                widgets.HBox([self.strength, self.steps, self.device]),
                widgets.HBox([self.traverse, self.frames]),
                widgets.HBox([self.edit_button, self.cancel_button, self.progress, self.status]),
                self.frame,
                self.view,
                *([self.view3d.widget] if self.view3d is not None else []),
            ]
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ----------------------------------------------------------------------------------- controls

    def _moved(self, name: str) -> None:
        if not self._following:
            self.moved.add(name)

    def _follow_source(self) -> None:
        self._following = True
        try:
            for name, widget in self.targets.items():
                if name not in self.moved:
                    widget.value = self.source[name].value
        finally:
            self._following = False

    def _measured(self) -> set[str]:
        return set(measurable_covariates(self.model)) if self.measure.value else set()

    def _enable_source(self) -> None:
        for name, widget in self.source.items():
            widget.disabled = name in self._measured()

    def source_values(self) -> dict[str, Any]:
        """The scan's own covariates the editor gives (those measured in the scan left out)."""
        return {name: widget.value for name, widget in self.source.items() if name not in self._measured()}

    def target_values(self) -> list[dict[str, Any]]:
        """One target per edit: the targets moved, or a traversal of one covariate from the scan's value."""
        name = self.traverse.value
        if name == NO_TRAVERSAL:
            return [{k: w.value for k, w in self.targets.items() if k in self.moved}]
        return traversal_targets(name, self.source[name].value, self.targets[name].value, self.frames.value)

    # ----------------------------------------------------------------------------------- editing

    def edit(self, wait: bool = False) -> EditResult | None:
        """Edit with the current settings; in a background thread unless ``wait``.

        Returns the result when ``wait`` is true (None if cancelled or refused), else None at once.
        """
        if self._runner.running:
            return None
        targets = self.target_values()
        if targets == [{}]:
            self.status.value = "move a target first: the edit changes only the covariates moved"
            return None
        self.edit_button.disabled, self.cancel_button.disabled = True, False
        self.status.value = "registering and editing..."
        self._runner.start(lambda: self._run(targets), wait=wait)
        return self.result if wait else None

    def wait(self, timeout: float | None = None) -> EditResult | None:
        """Wait for a background edit to end and return the result."""
        self._runner.wait(timeout)
        return self.result

    def cancel(self) -> None:
        """Stop the edit at its next step; the previous result stays."""
        self._runner.cancel()

    def _on_step(self, progress: StepProgress) -> None:
        self.progress.max, self.progress.value = progress.total, progress.step

    def _run(self, targets: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        try:
            result = self.session.edit(
                targets,
                source=self.source_values(),
                strength=float(self.strength.value),
                steps=int(self.steps.value),
                device=self.device.value,
                extrapolate=bool(self.extrapolate.value),
                callback=self._runner.cancellation.watch(self._on_step),
            )
        except SamplingCancelled:
            self.status.value = "cancelled"
        except BrainsynthError as error:
            self.status.value = f"error: {error}"
        else:
            self.result = result
            for name in result.source_measured:
                self.source[name].value = float(result.source[name])
            self.frame.max, self.frame.value = len(result) - 1, 0
            self.draw()
            if self.view3d is not None:
                self._show_3d(result)
            inversions = self.session.inversions
            self.status.value = (
                f"done in {time.perf_counter() - started:.1f} s (round trip {result.roundtrip_psnr_db:.1f} dB; "
                f"{inversions} inversion{'s' if inversions != 1 else ''} so far)"
            )
        finally:
            self.edit_button.disabled, self.cancel_button.disabled = False, True

    def _show_3d(self, result: EditResult) -> None:
        from brainsynth.jupyter.edits import describe_change

        affine = self.session.scan().original_affine
        labels = [f"edited to {describe_change(result, i)}" for i in range(len(result))]
        self.view3d.show_edit(result, affine, labels)

    def figure(self) -> plt.Figure | None:
        """The scan, the edit of the current frame and the change (None before the first edit)."""
        if self.result is None:
            return None
        from brainsynth.jupyter.edits import show_edit

        return show_edit(self.result, self.session.scan(), self.frame.value)

    def draw(self) -> None:
        """Redraw the view (as PNG bytes in an Image widget, which reaches the page from any thread)."""
        figure = self.figure()
        if figure is None:
            return
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        plt.close(figure)
        self.view.value = buffer.getvalue()

    def save(self, path: str | Path, **options: Any) -> list[Path]:
        """Save the last edit on the scan's grid, its difference and sidecar (see :meth:`EditResult.save`)."""
        if self.result is None:
            raise BrainsynthError("nothing to save yet: edit the scan first")
        return self.result.save(path, **options)
