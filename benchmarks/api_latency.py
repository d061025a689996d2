"""Latency of the demo's ``/predict`` endpoint through gradio_client (median of repeated calls).

    python benchmarks/api_latency.py [--checkpoint checkpoints/default] [--repeats 20]

Serves the app on a free local port, sends the example face, speech and a sentence, and reports the median and the
spread of the round trip (upload, queue, preprocessing, encoders, model, JSON back). The first call is a warm-up.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradio_client import Client, handle_file  # noqa: E402

import app  # noqa: E402
from mculora.predictor import Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo(Predictor.from_pretrained(args.checkpoint), args.checkpoint)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    client = Client(url, verbose=False)
    examples = ROOT / "assets" / "examples"
    inputs = (handle_file(examples / "astronaut.jpg"), handle_file(examples / "happy_speech.wav"), "We won!")
    client.predict(*inputs, True, True, True, api_name="/predict")
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        client.predict(*inputs, True, True, True, api_name="/predict")
        seconds.append(time.perf_counter() - start)
    quartiles = statistics.quantiles(seconds, n=4)
    print(
        f"/predict through gradio_client, {args.repeats} calls: median {1000 * statistics.median(seconds):.0f} ms "
        f"(quartiles {1000 * quartiles[0]:.0f}-{1000 * quartiles[2]:.0f} ms)"
    )
    client.close()
    demo.close()


if __name__ == "__main__":
    main()
