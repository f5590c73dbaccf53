"""The napari Edit widget on Colin27: seconds from a click on Edit to the layers, and the README's picture.

    xvfb-run -a python recipes/demo/napari_edit.py [PNG] [--runs N]

Opens Colin27 (skull-stripped, Debian's mricron-data) with the plugin's reader, docks the Edit widget
with the demo model at its default settings (strength 0.5, 50 steps), gives the scan's own sex and age
(female, 27; its volumes are measured) and clicks Edit the way a user does: first to 75 years with 90 ml
ventricles (registration, the model's reference, inversion and regeneration), then again with other
targets (regeneration only), RUNS times. Prints the seconds of each click; with PNG, saves the window
with the first edit's difference over the scan in a coronal slice through the ventricles.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

COLIN = "/usr/share/mricron/templates/ch2bet.nii.gz"


def _click(widget, application) -> float:
    previous = widget.last_result
    widget.run.run_button.native.click()
    while widget.last_result is previous:
        application.processEvents()
        if not widget.run.running and widget.last_result is previous and "error" in widget.run.status.value:
            raise RuntimeError(widget.run.status.value)
        time.sleep(0.005)
    return widget.last_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", nargs="?")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    (scan,) = viewer.open(COLIN, plugin="brainsynth")
    _, widget = viewer.window.add_plugin_dock_widget("brainsynth", "Edit")
    widget.model_controls.model_choice.value = "demo"
    widget.scan_layer.value = scan
    widget.source["sex"].value = "female"
    widget.source["age"].value = 27.0
    widget.model_controls.extrapolate.value = True
    application = QApplication.instance()
    widget.model_controls.covariates["age"].value = 75.0
    widget.model_controls.covariates["ventricular_volume"].value = 90.0
    report = {"model": "demo", "strength": widget.strength.value, "steps": widget.steps.value}
    report["first_edit_s"] = _click(widget, application)
    first_layers = list(widget.last_layers)
    again = []
    for run in range(args.runs):
        widget.model_controls.covariates["ventricular_volume"].value = 60.0 + 10 * run
        again.append(_click(widget, application))
    report["second_edits_s"] = again
    report["second_edit_median_s"] = statistics.median(again)
    report["inversions"] = widget.session().inversions
    report["measured"] = widget.last_result.measured_source
    if args.png:
        for layer in list(viewer.layers):
            if layer not in (scan, *first_layers):
                viewer.layers.remove(layer)
        first_layers[0].visible = False  # the scan with the change over it
        viewer.dims.ndisplay = 2
        viewer.dims.order = (1, 2, 0)  # coronal: y is the slider, z runs up, x across
        viewer.camera.orientation = ("towards", "up", "right")
        viewer.dims.set_point(1, -8.0)
        viewer.reset_view()
        from napari._qt.dialogs.qt_notification import NapariQtNotification

        for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
            toast.close()  # napari's own notices would cover part of the picture
        application.processEvents()
        viewer.screenshot(args.png, canvas_only=False, flash=False)
        report["png"] = args.png
    print(json.dumps(report, indent=1))
    viewer.close()


if __name__ == "__main__":
    main()
