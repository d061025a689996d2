"""Per-stage latency of `Predictor.predict` with all three modalities (median over repeated calls).

    python benchmarks/predict_latency.py [--checkpoint checkpoints/default] [--repeats 20] [--device cpu]

Inputs: scikit-image's astronaut photo (a real face), a RAVDESS clip from the shared data when present (else a
synthetic voiced signal), and a sentence. The first call (warm-up) is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np
from skimage import data as skdata

from mculora import Predictor


def speech(data_root: Path):
    clip = data_root / "ravdess_speech" / "audio" / "Actor_19" / "03-01-05-02-01-01-19.flac"
    if clip.is_file():
        return str(clip), f"RAVDESS {clip.name}"
    t = np.arange(3 * 16000) / 16000
    voiced = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (16000, (0.2 * voiced).astype(np.float32)), "synthetic 3 s voiced signal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/default")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default=None)
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("MCULORA_DATA_ROOT", "../shared/data")))
    args = parser.parse_args()

    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device)
    audio, audio_name = speech(args.data_root)
    inputs = {"image": skdata.astronaut(), "audio": audio, "text": "I can't believe we actually won the match!"}
    predictor.predict(**inputs)  # warm-up: lazy model loads, allocator
    runs = [predictor.predict(**inputs).timings_ms for _ in range(args.repeats)]
    print(f"device {predictor.device}; audio: {audio_name}; {args.repeats} calls, median ms per stage:")
    for stage in runs[0]:
        print(f"  {stage:18s} {statistics.median(run[stage] for run in runs):8.2f}")


if __name__ == "__main__":
    main()
