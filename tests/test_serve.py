"""``brainsynth serve``: the explorer as a Voilà page, in headless Chromium, two tabs at once."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("voila")
pytest.importorskip("playwright")

from tests.browser import CHROMIUM_ARGS, find_chromium, free_port, stop, wait_for_server


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brainsynth", *args], capture_output=True, text=True, timeout=timeout)


def test_ports_out_of_range_or_in_use_are_refused_before_serving():
    out_of_range = _cli("serve", "--port", "70000")
    assert out_of_range.returncode == 1
    assert "--port must be a whole number from 1 to 65535 (got 70000)" in out_of_range.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = _cli("serve", "--port", str(port))
    assert in_use.returncode == 1
    assert f"--port {port} is in use on 127.0.0.1" in in_use.stderr
    assert "serving" not in in_use.stdout


@contextmanager
def _served(model: str):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "brainsynth", "serve", "--model", model, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"},
    )
    try:
        wait_for_server(f"http://127.0.0.1:{port}/", 90)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(server)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_two_tabs_sample_at_once_and_both_get_their_brain_in_3d(browser, tmp_path):
    from PIL import Image

    with _served("demo") as url:
        pages = [browser.new_page(viewport={"width": 1200, "height": 1300}) for _ in range(2)]
        for page in pages:
            page.goto(url, timeout=180_000)
        buttons = [page.locator("button.jupyter-button", has_text="Generate") for page in pages]
        for button in buttons:
            button.wait_for(state="visible", timeout=180_000)
        assert "import" not in pages[0].content().split("<body")[1][:2000]  # no code on the page
        clicked = time.monotonic()
        for button in buttons:
            button.click()
        for page in pages:
            page.locator(".widget-label", has_text="done in").wait_for(timeout=180_000)
        seconds = time.monotonic() - clicked
        for index, page in enumerate(pages):
            page.wait_for_timeout(3000)
            shot = Image.open(io.BytesIO(page.locator("canvas").first.screenshot())).convert("L")
            assert np.asarray(shot, dtype=float).std() > 5, f"tab {index}: the 3D view is blank"
        pages[0].screenshot(path=str(tmp_path / "served.png"))
        print(f"two tabs: click to both brains {seconds:.1f} s")


def test_a_model_that_cannot_be_loaded_is_said_on_the_page(browser, tmp_path):
    with _served(str(tmp_path / "no-such-model")) as url:
        page = browser.new_page()
        page.goto(url, timeout=180_000)
        message = page.locator("text=could not be loaded")
        message.wait_for(timeout=180_000)
        assert "no-such-model" in page.content()


def test_the_served_page_is_the_page_source():
    """The packaged notebook Voilà runs holds exactly the page's one cell."""
    from brainsynth.jupyter.serve import PAGE, PAGE_SOURCE, notebook_text

    assert PAGE.read_text().strip() == notebook_text([PAGE_SOURCE])


def test_stopping_the_server_leaves_nothing_running(tmp_path):
    with _served("demo") as url:
        import urllib.request

        assert b"voila" in urllib.request.urlopen(url, timeout=30).read()
        port = url.rsplit(":", 1)[1].strip("/")
    time.sleep(2)
    left = subprocess.run(["pgrep", "-f", f"--port={port}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "Voilà outlived brainsynth serve"
