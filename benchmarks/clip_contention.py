"""Predictions while a clip scores: ``/predict``'s latency through the served page, idle and while another visitor's
long clip scores on ``/predict_clip``.

    python benchmarks/clip_contention.py [--seconds 120] [--calls 30] [--json OUT.json]

The page is served as `app.launch` serves it; one client calls ``/predict`` (face, voice, sentence) ``--calls`` times
back to back on an idle server, then submits a ``--seconds`` clip (1280x720 H.264 at 30 frames/s, speech and a
transcript: `benchmarks/clip.build_clip`) and calls ``/predict`` back to back until the clip's result is in. It
reports each phase's p50 and p95, their ratio, and the clip's seconds per wall-clock second under that load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the served-app helper the tests use
sys.path.insert(0, str(ROOT / "benchmarks"))
from clip import build_clip  # noqa: E402
from gradio_client import handle_file  # noqa: E402
from load import FACE, SPEECH, TEXT  # noqa: E402
from served import served_demo  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(predictor, checkpoint: Path, seconds: float = 120.0, calls: int = 30) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        clip, transcript = build_clip(Path(folder), seconds)
        with served_demo(predictor, checkpoint) as (_, client):
            args = [handle_file(str(FACE)), handle_file(str(SPEECH)), TEXT, True, True, True, None]

            def predict_ms() -> float:
                start = time.perf_counter()
                client.predict(*args, api_name="/predict")
                return 1000 * (time.perf_counter() - start)

            for _ in range(3):  # warm-up
                predict_ms()
            idle = [predict_ms() for _ in range(calls)]
            clip_args = [handle_file(str(clip)), handle_file(str(transcript)), "", True, True, True, None]
            start = time.perf_counter()
            job = client.submit(*clip_args, api_name="/predict_clip")
            under_clip = []
            while not job.done():
                under_clip.append(predict_ms())
            result = job.result()
            clip_wall = time.perf_counter() - start
    if not isinstance(result, dict):
        raise RuntimeError(f"the clip failed: {result}")
    return {
        "clip": f"{seconds:.0f} s, 1280x720 H.264 30 fps + AAC speech + SRT, through /predict_clip",
        "predict_idle_p50_ms": percentile(idle, 50),
        "predict_idle_p95_ms": percentile(idle, 95),
        "predict_under_clip_p50_ms": percentile(under_clip, 50),
        "predict_under_clip_p95_ms": percentile(under_clip, 95),
        "p95_ratio": percentile(under_clip, 95) / percentile(idle, 95),
        "predict_calls_under_clip": len(under_clip),
        "clip_wall_s": clip_wall,
        "clip_realtime_factor": result["duration_s"] / clip_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    from mculora.serving.allocator import keep_freed_memory
    from mculora.serving.predictor import Predictor
    from mculora.serving.torch_thread import TorchThread

    keep_freed_memory()  # as the served app does at start-up
    predictor = Predictor.from_pretrained(args.checkpoint, device="cpu", torch_thread=TorchThread())
    result = measure(predictor, args.checkpoint, args.seconds, args.calls)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
