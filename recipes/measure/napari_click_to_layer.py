"""Seconds from a click on Generate to the brain's layer in napari, with and without the live preview.

    xvfb-run -a python recipes/measure/napari_click_to_layer.py [MODEL] [RUNS]

Runs a real viewer (under Xvfb on a machine without a display), presses the Generate button the way a
user does and prints the median over RUNS clicks (the first click, which also warms up, is reported
apart).
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main(model: str = "demo", runs: int = 5) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_plugin._generate import GenerateWidget

    viewer = napari.Viewer(show=True)
    widget = GenerateWidget(viewer, model)
    viewer.window.add_dock_widget(widget, area="right")
    report = {"model": model, "runs": runs}
    for preview in (True, False):
        widget.live_preview.value = preview
        seconds = []
        for run in range(runs + 1):
            widget.sampling.seed.value = run
            previous = widget.last_result
            widget.run.run_button.native.click()
            while widget.last_result is previous:
                QApplication.processEvents()
                time.sleep(0.005)
            seconds.append(widget.last_seconds)
        key = "with_preview" if preview else "without_preview"
        report[key] = {"first_click_s": seconds[0], "median_s": statistics.median(seconds[1:]), "runs_s": seconds[1:]}
    report["settings"] = widget.last_result.settings
    viewer.close()
    return report


if __name__ == "__main__":
    arguments = sys.argv[1:]
    print(
        json.dumps(
            main(arguments[0] if arguments else "demo", int(arguments[1]) if len(arguments) > 1 else 5), indent=1
        )
    )
