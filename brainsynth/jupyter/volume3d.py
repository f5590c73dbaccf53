"""A 3D view of brains in the browser: NiiVue (WebGL2) through ipyniivue.

:class:`BrainView` shows a volume as a volume rendering beside three synchronised orthogonal slices,
placed in world coordinates by its affine (NiiVue reads the NIfTI header, so left, right, up and down
are the scanner's, not the voxel order's). It updates in place when a new brain arrives, shows a 4D
series (a traversal, an interpolation, the denoising steps) with a frame slider and a play button, and
can lay a signed difference over a scan in a diverging colour map. Volumes travel to the page as
NIfTI bytes; nothing is written to disk.

A page without WebGL2 cannot draw NiiVue; the :class:`WebGL2Check` widget tells (``supported`` comes
back from the page) and shows one line saying that the slice views still work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from brainsynth.errors import BrainsynthError
from brainsynth.files.nifti import nifti_bytes

#: NiiVue's colour maps for a difference: warm where the edit is brighter, cool where darker.
POSITIVE_COLORMAP, NEGATIVE_COLORMAP = "warm", "winter"

_CHECK_ESM = """
function render({ model, el }) {
  const canvas = document.createElement("canvas");
  const supported = !!(canvas.getContext && canvas.getContext("webgl2"));
  model.set("supported", supported);
  model.save_changes();
  if (!supported) {
    el.textContent = "This browser has no WebGL2: the 3D view is off; the slice views below still work.";
    el.style.color = "#a05a00";
  }
}
export default { render };
"""


def _niivue():
    try:
        import ipyniivue
    except ImportError as exc:
        raise BrainsynthError("the 3D view needs ipyniivue: pip install 'brainsynth[notebook]'") from exc
    return ipyniivue


def _check_class():
    import anywidget

    class WebGL2Check(anywidget.AnyWidget):
        """Reports whether the page can draw WebGL2 (``supported``: None until a page has rendered it)."""

        _esm = _CHECK_ESM
        supported = traitlets.Bool(None, allow_none=True).tag(sync=True)

    return WebGL2Check


def webgl2_check():
    """A widget that tells whether the browser showing it has WebGL2, with a one-line notice when not."""
    return _check_class()()


class BrainView:
    """NiiVue's volume rendering and orthogonal slices of one brain, or of a series with a frame slider.

    Parameters
    ----------
    height : int
        Height of the canvas in pixels.

    Attributes
    ----------
    niivue : ipyniivue.NiiVue
        The viewer (its ``volumes`` are what is shown).
    frame, play : ipywidgets
        The frame slider and play button of a series (hidden for one brain).
    caption : ipywidgets.HTML
        What is shown: the title, and the measured volumes of the current frame when given.
    widget : ipywidgets.VBox
        All of it, to display.
    """

    def __init__(self, height: int = 420) -> None:
        ipyniivue = _niivue()
        self.niivue = ipyniivue.NiiVue(
            height=height,
            multiplanar_show_render=ipyniivue.ShowRender.ALWAYS,
            back_color=(0.0, 0.0, 0.0, 1.0),
            show_3d_crosshair=True,
        )
        self.niivue.set_slice_type(ipyniivue.SliceType.MULTIPLANAR)
        self.frame = widgets.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=True)
        self.play = widgets.Play(value=0, min=0, max=0, interval=600, description="play")
        widgets.jslink((self.play, "value"), (self.frame, "value"))
        self.caption = widgets.HTML(value="")
        self.webgl2 = webgl2_check()
        self.controls = widgets.HBox([self.play, self.frame], layout=widgets.Layout(display="none"))
        self.widget = widgets.VBox([self.webgl2, self.niivue, self.controls, self.caption])
        self.labels: list[str] = []
        self.shown = 0  # how many times a volume was sent
        self.frame.observe(self._on_frame, names="value")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _volume(self, volume: np.ndarray, affine: np.ndarray, name: str, **options: Any):
        data = nifti_bytes(np.asarray(volume, dtype=np.float32), np.asarray(affine), gzipped=False)
        return _niivue().Volume(data=data, name=f"{name}.nii", **options)

    def show(
        self,
        volume: np.ndarray,
        affine: np.ndarray,
        *,
        title: str = "",
        overlay: np.ndarray | None = None,
        limits: tuple[float, float] | None = None,
    ) -> None:
        """Show one brain (X, Y, Z) placed by ``affine``, optionally with a signed ``overlay`` on the same grid."""
        low, high = limits if limits is not None else _limits(volume)
        volumes = [self._volume(volume, affine, "brain", colormap="gray", cal_min=low, cal_max=high)]
        if overlay is not None:
            volumes.append(self._overlay(overlay, affine))
        self.niivue.load_volumes(volumes)
        self.controls.layout.display = "none"
        self.labels = []
        self.caption.value = title
        self.shown += 1

    def show_series(
        self,
        volumes: np.ndarray,
        affine: np.ndarray,
        *,
        labels: Sequence[str] = (),
        overlay: np.ndarray | None = None,
        limits: tuple[float, float] | None = None,
    ) -> None:
        """Show a series (B, X, Y, Z) as one 4D volume with a frame slider and play button;
        ``labels[i]`` is the caption of frame ``i`` (its covariates and measured volumes, say)."""
        volumes = np.asarray(volumes, dtype=np.float32)
        if volumes.ndim != 4:
            raise ValueError(f"volumes must be (frames, X, Y, Z) (got shape {volumes.shape})")
        series = np.moveaxis(volumes, 0, -1)  # frames last, as NIfTI stores them
        low, high = limits if limits is not None else _limits(volumes)
        shown = [self._volume(series, affine, "series", colormap="gray", cal_min=low, cal_max=high)]
        if overlay is not None:
            shown.append(self._overlay(np.moveaxis(np.asarray(overlay), 0, -1), affine))
        self.niivue.load_volumes(shown)
        count = volumes.shape[0]
        self.labels = list(labels) or [f"frame {i}" for i in range(count)]
        self.frame.max = self.play.max = count - 1
        self.frame.value = 0
        self.controls.layout.display = ""
        self.caption.value = self.labels[0]
        self.shown += 1

    def show_edit(self, result, affine: np.ndarray, labels: Sequence[str]) -> None:
        """Edits of a scan (an ``EditResult``) on the scan's grid with their changes over them."""
        if len(result) == 1:
            self.show(result.on_scan[0], affine, title=labels[0], overlay=result.differences_on_scan[0])
        else:
            self.show_series(result.on_scan, affine, labels=labels, overlay=result.differences_on_scan)

    def _overlay(self, difference: np.ndarray, affine: np.ndarray):
        span = max(float(np.abs(difference).max()), 1e-6)
        return self._volume(
            difference,
            affine,
            "difference",
            colormap=POSITIVE_COLORMAP,
            colormap_negative=NEGATIVE_COLORMAP,
            cal_min=0.05 * span,
            cal_max=span,
            cal_min_neg=-span,
            cal_max_neg=-0.05 * span,
            opacity=0.8,
        )

    def _on_frame(self, change: dict) -> None:
        index = int(change["new"])
        for volume in self.niivue.volumes:
            volume.frame_4d = index
        if self.labels:
            self.caption.value = self.labels[min(index, len(self.labels) - 1)]


def _limits(volume: np.ndarray) -> tuple[float, float]:
    finite = np.asarray(volume)[np.isfinite(volume)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    return low, max(high, low + 1e-6)


def view_3d(result, *, height: int = 420, measure: bool = True) -> BrainView:
    """A :class:`BrainView` of a sampling result: one brain, or a series (traversal, interpolation,
    batch) with a frame slider, each frame captioned with its covariates and seed and, with
    ``measure``, the ventricular and brain volume measured in it (MNI-space models).

    Examples
    --------
    >>> view_3d(model.traverse("age", [45, 60, 75], seed=1))  # doctest: +SKIP
    """
    from brainsynth.controls import result_title
    from brainsynth.jupyter.views import measured_volumes

    view = BrainView(height=height)
    titles = []
    for index in range(len(result)):
        title = result_title(result.covariates[index], result.seeds[index])
        measured = measured_volumes(result.volumes[index], result.affine) if measure else None
        if measured is not None:
            title += (
                f" | measured: ventricles {measured.ventricular_volume_ml:.0f} ml, "
                f"brain {measured.brain_volume_ml:.0f} ml"
            )
        titles.append(title)
    if len(result) == 1:
        view.show(result.volumes[0], result.affine, title=titles[0], limits=(0.0, 1.0))
    else:
        view.show_series(result.volumes, result.affine, labels=titles, limits=(0.0, 1.0))
    return view


def view_edit_3d(result, scan, *, height: int = 420) -> BrainView:
    """A :class:`BrainView` of an edit over the scan on its own grid: the edited scan with the signed
    change laid over it (warm brighter, cool darker); a traversal of edits gets a frame slider."""
    from brainsynth.jupyter.edits import describe_change

    view = BrainView(height=height)
    labels = [f"edited to {describe_change(result, i)}" for i in range(len(result))]
    view.show_edit(result, scan.original_affine, labels)
    return view


def denoising_3d(model, steps_to_show: Sequence[int] | None = None, *, seed: int = 0, **sampling: Any) -> BrainView:
    """How noise becomes a brain, in 3D: the brain decoded from the predicted clean latent at chosen
    steps of one sampling run, as a series to play (see :func:`brainsynth.jupyter.show_denoising`)."""
    from brainsynth.jupyter.views import record_denoising

    total = sampling.get("steps") or model.config.default_steps
    chosen = list(steps_to_show or sorted({1, max(1, total // 4), max(1, total // 2), max(1, 3 * total // 4), total}))
    result, snapshots = record_denoising(model, chosen, seed=seed, **sampling)
    device = next(model.autoencoder.parameters()).device
    volumes = np.stack([model.decode(clean.to(device))[0] for _, _, clean in snapshots])
    view = BrainView()
    labels = [f"step {step}/{total}: the brain decoded from the predicted clean latent" for step, _, _ in snapshots]
    view.show_series(volumes, result.affine, labels=labels, limits=(0.0, 1.0))
    return view


def forward_process_3d(
    model, image: np.ndarray, timesteps: Sequence[int] = (0, 100, 300, 600, 999), *, seed: int = 0
) -> BrainView:
    """The forward (noising) process in 3D: ``image`` encoded, noised to each timestep and decoded,
    as a series to play (see :func:`brainsynth.jupyter.show_forward_process`)."""
    from brainsynth.jupyter.views import forward_noised

    noised = forward_noised(model, image, timesteps, seed=seed)
    labels = [f"t = {t}: signal {a**0.5:.2f}, noise {(1 - a) ** 0.5:.2f}" for t, a, _, _ in noised]
    view = BrainView()
    view.show_series(np.stack([d for *_, d in noised]), model.config.affine_array, labels=labels, limits=(0.0, 1.0))
    return view
