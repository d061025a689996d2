"""Latency of each demo event that ZeroGPU would run under ``@spaces.GPU``, to size its requested duration.

    python benchmarks/demo_latency.py [--checkpoint checkpoints/default] [--repeats 10] [--device cpu]

Calls the page's callbacks directly (no server) with the bundled example face and speech, a sentence, and a
2-second video of the face: the main prediction, the live-webcam tick, the 7-combination ablation on an image and on
the video. Reports the first (cold) call and the median and maximum of the repeats, and the duration
`mculora.serving.server` requests (`GPU_SECONDS`) as a multiple of the slowest median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from mculora.serving.demo import Conversation, DemoCallbacks
from mculora.serving.predictor import Predictor
from mculora.serving.server import GPU_SECONDS
from mculora.serving.torch_thread import TorchThread

ROOT = Path(__file__).resolve().parents[1]
FACE = ROOT / "assets" / "examples" / "astronaut.jpg"
SPEECH = ROOT / "assets" / "examples" / "happy_speech.wav"
TEXT = "I can't believe it, this is wonderful news!"


def face_video(folder: Path, seconds: float = 2.0, fps: int = 15) -> str:
    frame = cv2.imread(str(FACE))
    path = folder / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
    for _ in range(int(seconds * fps)):
        writer.write(frame)
    writer.release()
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "default"))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device, torch_thread=TorchThread())  # as the app
    callbacks = DemoCallbacks(predictor)
    frame = cv2.cvtColor(cv2.imread(str(FACE)), cv2.COLOR_BGR2RGB)
    with tempfile.TemporaryDirectory() as folder:
        video = face_video(Path(folder))
        events = {
            "predict (face, speech, text)": lambda: callbacks.predict_view(
                str(FACE), str(SPEECH), TEXT, None, True, True, True, False, Conversation()
            ),
            "live webcam tick (frame, text)": lambda: callbacks.live_view(frame, None, TEXT, True, True, True),
            "ablation, 7 combinations (image)": lambda: callbacks.ablate_view(
                str(FACE), str(SPEECH), TEXT, None, True, True, True
            ),
            "ablation, 7 combinations (2 s video)": lambda: callbacks.ablate_view(
                None, str(SPEECH), TEXT, video, True, True, True
            ),
        }
        print(f"device {predictor.device}, {args.repeats} repeats after one cold call\n")
        print("| event | cold (s) | median (s) | max (s) |\n|---|---|---|---|")
        medians = []
        for name, call in events.items():
            start = time.perf_counter()
            call()
            cold = time.perf_counter() - start
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - start)
            medians.append(statistics.median(seconds))
            print(f"| {name} | {cold:.3f} | {medians[-1]:.3f} | {max(seconds):.3f} |")
    slowest = max(medians)
    print(f"\nslowest median {slowest:.3f} s; GPU_SECONDS = {GPU_SECONDS} s = {GPU_SECONDS / slowest:.0f}x that")


if __name__ == "__main__":
    main()
