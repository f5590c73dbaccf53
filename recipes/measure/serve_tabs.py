"""Seconds from a click on Generate to the brain in 3D in pages served by ``brainsynth serve``, for
1, 2 and 4 browser tabs clicking at once, and the README's picture of the served page.

    python recipes/measure/serve_tabs.py [PNG] [--model demo]

Starts ``brainsynth serve`` (Voilà: one kernel per tab), opens the tabs in headless Chromium (WebGL2
drawn by SwiftShader on the CPU) and presses every Generate button at the same moment.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tests.browser import CHROMIUM_ARGS, find_chromium
from tests.test_serve import _served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", nargs="?")
    parser.add_argument("--model", default="demo")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    report: dict = {"model": args.model}
    with _served(args.model) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        for tabs in (1, 2, 4):
            pages = [browser.new_page(viewport={"width": 1200, "height": 1250}) for _ in range(tabs)]
            opened = time.monotonic()
            for page in pages:
                page.goto(url, timeout=300_000)
            buttons = [page.locator("button.jupyter-button", has_text="Generate") for page in pages]
            for button in buttons:
                button.wait_for(state="visible", timeout=300_000)
            ready = time.monotonic() - opened
            clicked = time.monotonic()
            for button in buttons:
                button.click()
            finished = []
            for page in pages:
                page.locator(".widget-label", has_text="done in").wait_for(timeout=300_000)
                finished.append(round(time.monotonic() - clicked, 2))
            report[f"{tabs}_tabs"] = {"pages_ready_s": round(ready, 1), "click_to_brain_s": finished}
            print(tabs, report[f"{tabs}_tabs"], flush=True)
            if args.png and tabs == 1:
                pages[0].wait_for_timeout(3000)
                pages[0].screenshot(path=args.png)
            for page in pages:
                page.close()
        browser.close()
    if args.png:
        report["png"] = str(Path(args.png))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
