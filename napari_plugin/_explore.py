"""``brainsynth explore``: napari with the brainsynth widgets docked and a model loaded."""

from __future__ import annotations

from pathlib import Path


def explore(model: str | None = None, screenshot: str | Path | None = None, seed: int = 0) -> Path | None:
    """Open napari with the Generate, Traverse and Interpolate widgets docked.

    With ``screenshot``, generate the first brain, show it in 3D, save a screenshot of the window and
    close instead of waiting for the user.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_plugin._generate import GenerateWidget
    from napari_plugin._layers import brain_layer
    from napari_plugin._sweep import InterpolateWidget, TraverseWidget

    viewer = napari.Viewer(title="brainsynth", show=True)
    viewer.window._qt_window.resize(1500, 950)
    generate = GenerateWidget(viewer, model)
    viewer.window.add_dock_widget(generate, name="brainsynth: generate", area="right")
    traverse = viewer.window.add_dock_widget(TraverseWidget(viewer, model), name="brainsynth: traverse", area="right")
    interpolate = viewer.window.add_dock_widget(
        InterpolateWidget(viewer, model), name="brainsynth: interpolate", area="right"
    )
    viewer.window._qt_window.tabifyDockWidget(traverse, interpolate)
    if screenshot is None:
        napari.run()
        return None
    chosen = generate.model_controls.model
    if chosen is None:
        viewer.close()
        raise RuntimeError(f"no model could be loaded ({model or 'default'}); see the message above")
    data, kwargs, _ = brain_layer(chosen.sample(generate.model_controls.values(), seed=seed))
    viewer.add_image(data, **kwargs)
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = (-20.0, 35.0, 145.0)
    viewer.camera.zoom *= 0.9
    for dock in (traverse, interpolate):
        dock.setVisible(True)
    QApplication.processEvents()
    viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
    viewer.close()
    return Path(screenshot)
