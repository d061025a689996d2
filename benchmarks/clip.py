"""Clip throughput: seconds of clip scored per wall-clock second, with the share of each stage and the peak memory.

    python benchmarks/clip.py [--seconds 30] [--repeats 3] [--json OUT.json]

Builds a talking-face clip like a laptop recording: 1280x720 H.264 at 30 frames/s with an AAC soundtrack of speech
(the bundled face and voices, alternating every 3 s) and a timed transcript with a cue every 3 s. Then scores it with
`Predictor.predict_clip` (every combination of every window, the default method) ``--repeats`` times after a warm-up
on a 2 s clip, and writes the annotated MP4 once. It runs in a process of its own, so the peak RSS it reports
(the model, the encoders and the clip's work) is the clip scoring's alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
STAGES = {
    "decode": ("decode",),
    "face": ("face_detect", "face_encode"),
    "speech": ("audio_preprocess", "audio_encode"),
    "text": ("text_preprocess", "text_encode"),
    "model": ("model",),
}


def build_clip(folder: Path, seconds: float, width: int = 1280, height: int = 720) -> tuple[Path, Path]:
    from mculora.preprocess.audio import prepare_audio
    from mculora.serving.clip_writer import compose_clip

    face = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    voices = [prepare_audio(str(EXAMPLES / name)).samples for name in ("happy_speech.wav", "sad_speech.wav")]
    parts = [(face, voices[k % 2], 3.0) for k in range(int(np.ceil(seconds / 3)))]
    clip = compose_clip(folder / "talk.mp4", parts, width=width, height=height, fps=30.0)
    cues = ["What a lovely surprise this is!", "I feel so low today."]
    transcript = folder / "talk.srt"

    def stamp(seconds: float) -> str:
        minutes, rest = divmod(round(seconds * 1000), 60_000)
        return f"00:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"

    transcript.write_text(
        "\n".join(f"{k + 1}\n{stamp(3 * k)} --> {stamp(3 * k + 2.8)}\n{cues[k % 2]}\n" for k in range(len(parts)))
    )
    return clip, transcript


def measure(seconds: float, repeats: int, checkpoint: Path) -> dict:
    from mculora.serving.allocator import keep_freed_memory
    from mculora.serving.annotate import write_annotated_video
    from mculora.serving.predictor import Predictor
    from mculora.serving.torch_thread import TorchThread

    keep_freed_memory()  # as the served app does at start-up
    predictor = Predictor.from_pretrained(checkpoint, device="cpu", torch_thread=TorchThread())
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "warm").mkdir()
        warm, warm_transcript = build_clip(folder / "warm", 3.0)
        predictor.predict_clip(warm, transcript=warm_transcript)
        clip, transcript = build_clip(folder, seconds)
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            result = predictor.predict_clip(clip, transcript=transcript)
            runs.append((time.perf_counter() - start, result.timings_ms))
        wall = statistics.median(run[0] for run in runs)
        shares = {
            stage: statistics.median(sum(run[1].get(key, 0.0) for key in keys) / 1000 for run in runs)
            for stage, keys in STAGES.items()
        }
        start = time.perf_counter()
        write_annotated_video(clip, result, folder / "annotated.mp4")
        annotate_s = time.perf_counter() - start
        rows = sum(len(w.rows) for w in result.windows)
    return {
        "clip": f"{seconds:.0f} s, 1280x720 H.264 30 fps + AAC speech + SRT",
        "clip_seconds": result.duration_s,
        "windows": len(result.windows),
        "rows": rows,
        "wall_s": wall,
        "realtime_factor": result.duration_s / wall,
        "stage_s": shares,
        "other_s": wall - sum(shares.values()),
        "annotated_mp4_s": annotate_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec, where ``ru_maxrss`` keeps the peak
    of the process that forked it (a benchmark suite holding its training data would be counted)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    result = measure(args.seconds, args.repeats, args.checkpoint)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
