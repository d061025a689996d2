"""The demo served for real on 127.0.0.1 (in this process or as `python app.py`), for tests that call it over HTTP."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_client(url: str):
    """A gradio_client for a local plain-HTTP server. ``ssl_verify=False`` because there is no TLS to verify: with
    it on, gradio_client builds a new TLS context (loading the CA bundle, about 20 ms of CPU on these machines) for
    every file upload and every call, which clients on the server's own cores would add to its load."""
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=False)


@contextlib.contextmanager
def served_demo(predictor, checkpoint: Path, **build_options) -> Iterator[tuple[object, object]]:
    """``(demo, client)``: the app's page with the launch settings `app.launch` gives it, and an `api_client`."""
    import app

    demo = app.build_demo(predictor, checkpoint, **build_options)
    _, url, _ = app.launch(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    client = api_client(url)
    try:
        yield demo, client
    finally:
        client.close()
        demo.close()
