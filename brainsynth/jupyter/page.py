"""The page ``brainsynth serve`` shows in each browser tab: the explorer, or why it could not start."""

from __future__ import annotations

import html
import os

import ipywidgets as widgets

#: The environment variable that tells a served page which model to load.
MODEL_VARIABLE = "BRAINSYNTH_SERVE_MODEL"


def explorer_page(model: str | None = None) -> widgets.Widget:
    """The explorer of ``model`` (default: the served model) as one widget; a model that cannot be
    loaded gives a page that says so, with the reason, instead of a blank one."""
    from brainsynth.jupyter.explorer import Explorer

    name = model or os.environ.get(MODEL_VARIABLE, "demo")
    try:
        explorer = Explorer(name)
    except Exception as error:  # shown on the page: the reader has no console
        return widgets.HTML(
            f"<h3>brainsynth</h3><p><b>The model {html.escape(name)!s} could not be loaded:</b> "
            f"{html.escape(str(error))}</p><p>Restart <code>brainsynth serve</code> with another "
            "<code>--model</code>.</p>"
        )
    title = widgets.HTML(
        f"<h3>brainsynth: brains from a latent diffusion model ({html.escape(explorer.model.config.name)})</h3>"
        "<p>Set the covariates in real units and press Generate. Each browser tab has its own session.</p>"
    )
    return widgets.VBox([title, explorer.widget])
