"""Drive brainsynth's Jupyter widgets in a real JupyterLab, in headless Chromium (through Playwright).

``python -m tests.browser MODEL PNG`` makes the README's picture of the Explorer, ``python -m
tests.browser --editor PNG`` the one of the ScanEditor on Colin27; the tests call :func:`run_explorer`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

NOTEBOOK_CELLS = [
    "from brainsynth.jupyter import Explorer\nexplorer = Explorer({model!r})\nexplorer",
]
EDITOR_CELLS = [
    "from brainsynth.jupyter import ScanEditor\n"
    "colin = '/usr/share/mricron/templates/ch2bet.nii.gz'\n"
    "editor = ScanEditor(colin, {model!r}, source={{'sex': 'female', 'age': 27}})\n"
    "editor.extrapolate.value = True\n"
    "editor.targets['age'].value = 75\n"
    "editor.targets['ventricular_volume'].value = 90\n"
    "editor",
]


def find_chromium() -> str | None:
    """The system's Chromium (Debian package ``chromium``), if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_notebook(folder: Path, model: str, cells: list[str]) -> Path:
    from brainsynth.jupyter.serve import notebook_text

    path = folder / "explorer.ipynb"
    path.write_text(notebook_text([source.format(model=model) for source in cells]))
    return path


def stop(server: subprocess.Popen) -> None:
    """Stop a server process: terminate, then kill if it lingers."""
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def wait_for_server(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


#: Chromium's flags: no sandbox (root in CI), and WebGL2 drawn on the CPU by SwiftShader (NiiVue needs it).
CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@contextlib.contextmanager
def notebook_page(
    cells: list[str],
    folder: Path,
    *,
    model: str = "demo",
    timeout: float = 240.0,
    viewport=(1200, 1100),
    chromium_args: list[str] = CHROMIUM_ARGS,
):
    """A JupyterLab server on a notebook of ``cells`` and a headless Chromium page on it, its kernel
    started; yields ``(page, run_all)`` where ``run_all()`` runs every cell. ``chromium_args`` are
    Chromium's flags (default: :data:`CHROMIUM_ARGS`)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed (Debian package 'chromium')")
    folder.mkdir(parents=True, exist_ok=True)
    _write_notebook(folder, model, cells)
    port, token = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
            "--allow-root",
            "--LabApp.expose_app_in_browser=True",
            "--ServerApp.disable_check_xsrf=True",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(f"{base}/api/status?token={token}", 60)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=chromium_args)
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}", timeout=timeout * 1000)
            page.wait_for_function(
                "window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                timeout=timeout * 1000,
            )

            def run_all() -> None:
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            yield page, run_all
            browser.close()
    finally:
        stop(server)


def dismiss_news(page) -> None:
    """Close JupyterLab's question about news, which would cover part of a picture."""
    news = page.locator(".jp-Notification-Toast-Close, .Toastify__close-button")
    if news.count():
        news.first.click()


def run_explorer(
    model: str,
    folder: Path,
    screenshot: Path,
    *,
    timeout: float = 240.0,
    cells: list[str] = NOTEBOOK_CELLS,
    button_text: str = "Generate",
    viewport: tuple[int, int] = (1200, 1100),
) -> dict:
    """Open a notebook with a widget (the Explorer unless ``cells`` say otherwise) in JupyterLab, press
    its ``button_text`` button in the page, wait for the image.

    Returns what the page showed: the status text, whether the slice image appeared, and the times
    (kernel start to widget shown; click to image) in seconds.
    """
    report: dict = {}
    with notebook_page(cells, folder, model=model, timeout=timeout, viewport=viewport) as (page, run_all):
        started = time.monotonic()
        run_all()
        button = page.locator("button.jupyter-button", has_text=button_text)
        button.wait_for(state="visible", timeout=timeout * 1000)
        report["widget_seconds"] = time.monotonic() - started
        clicked = time.monotonic()
        button.click()
        status = page.locator(".widget-label", has_text="done in")
        status.wait_for(timeout=timeout * 1000)
        page.wait_for_function(
            "[...document.querySelectorAll('img.widget-image')].some(i => i.naturalWidth > 0)",
            timeout=timeout * 1000,
        )
        report["generate_seconds"] = time.monotonic() - clicked
        canvases = page.locator("canvas")
        if canvases.count():  # the 3D view: how much it drew
            from PIL import Image

            page.wait_for_timeout(3000)
            shot = Image.open(io.BytesIO(canvases.first.screenshot())).convert("L")
            report["canvas_std"] = float(np.asarray(shot, dtype=float).std())
        page.locator("img.widget-image").last.scroll_into_view_if_needed()
        dismiss_news(page)
        report["status"] = status.inner_text()
        report["image_width"] = page.evaluate(
            "Math.max(...[...document.querySelectorAll('img.widget-image')].map(i => i.naturalWidth))"
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(screenshot), full_page=False)
    return report


if __name__ == "__main__":  # python -m tests.browser MODEL PNG, or --editor PNG
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        if sys.argv[1] == "--editor":
            options = {"cells": EDITOR_CELLS, "button_text": "Edit", "viewport": (1200, 1500)}
            report = run_explorer("demo", Path(work), Path(sys.argv[2]), **options)
        else:
            report = run_explorer(sys.argv[1], Path(work), Path(sys.argv[2]))
        print(json.dumps(report, indent=1))
