"""``brainsynth serve``: the explorer as a web page for a classroom, through Voilà.

Voilà runs a notebook and shows only its widgets, with no code and no notebook interface; every
browser tab gets a kernel of its own, so one student's sampling never blocks another's page (on one
CPU they share its cores: sampling runs at once and each takes longer, nothing waits in a queue). The
server listens on localhost unless told otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path

from brainsynth.errors import BrainsynthError, InvalidParameterError
from brainsynth.jupyter.page import MODEL_VARIABLE

PAGE_SOURCE = "from brainsynth.jupyter.page import explorer_page\n\nexplorer_page()"


def check_port(port: object, host: str = "127.0.0.1") -> int:
    """Return ``port`` if it is a whole number from 1 to 65535 that nothing on ``host`` listens on."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidParameterError(f"--port must be a whole number from 1 to 65535 (got {port!r})")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise InvalidParameterError(
                    f"--port {port} is in use on {host}: another server listens there; choose another port"
                ) from error
            message = f"--host {host!r} with --port {port} cannot be listened on ({error})"
            raise InvalidParameterError(message) from error
    return port


def notebook_text(sources: list[str]) -> str:
    """A notebook (nbformat 4, Python 3 kernel) of code cells with these sources, as JSON text."""
    cells = [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": s} for s in sources
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.dumps({"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5})


#: The notebook Voilà runs for each tab (packaged; its one cell is :data:`PAGE_SOURCE`).
PAGE = Path(__file__).with_name("serve_page.ipynb")


def serve_command(page: Path, port: int, host: str) -> list[str]:
    """The Voilà command line that serves ``page``."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(page),
        f"--port={port}",
        f"--Voila.ip={host}",
        "--no-browser",
        "--strip_sources=True",
        "--theme=light",
    ]


def serve(model: str = "demo", *, port: int = 8866, host: str = "127.0.0.1") -> int:
    """Serve the explorer of ``model`` at ``http://HOST:PORT`` until interrupted.

    The process becomes Voilà's (``exec``): a signal that stops it stops the server and its kernels,
    with nothing left running behind it.
    """
    try:
        import voila  # noqa: F401
    except ImportError as exc:
        raise BrainsynthError("brainsynth serve needs Voilà: pip install 'brainsynth[serve]'") from exc
    check_port(port, host)
    print(f"serving the brainsynth explorer ({model}) at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    sys.stderr.flush()
    os.execve(sys.executable, serve_command(PAGE, port, host), {**os.environ, MODEL_VARIABLE: model})
    return 0  # not reached: the process is Voilà's now
