"""The clip command: a recorded clip scored window by window, its exports written.

    python -m mculora.serving.clip_command talk.mp4 [--transcript talk.srt | --text "..."] [--out DIR]
        [--window 2 --hop 1] [--compare-with DIR ...] [--enrol CLIP | --profile FILE]

writes ``DIR/<clip>.csv``, ``DIR/<clip>.json`` and ``DIR/<clip>.annotated.mp4`` (`mculora.serving.clip`,
`mculora.serving.annotate`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from mculora.person import PersonProfile
from mculora.preprocess import UnusableInput
from mculora.serving.annotate import write_annotated_video
from mculora.serving.clip import HOP_S, WINDOW_S
from mculora.serving.predictor import Predictor


def load_profile(predictor: Predictor, clip=None, path=None) -> PersonProfile | None:
    """The command lines' ``--enrol CLIP`` / ``--profile FILE``: a profile enrolled from ``clip`` or read from
    ``path``, checked against ``predictor``'s checkpoint (None when neither is given). Raises ValueError."""
    if clip is not None:
        return predictor.enrol(clip=clip)
    if path is None:
        return None
    profile = PersonProfile.load(path)
    profile.check_checkpoint(predictor.fingerprint)
    return profile


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score a recorded clip window by window under every combination.")
    parser.add_argument("clip", help="a video (mp4, mov, webm, mkv, avi) or audio-only file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--transcript", help="an .srt or .vtt transcript; its cues give each window's text")
    source.add_argument("--text", help="a sentence that applies to the whole clip")
    parser.add_argument("--out", default=".", help="folder for the CSV, JSON and annotated MP4 (default: .)")
    parser.add_argument("--checkpoint", default="checkpoints/default")
    parser.add_argument("--compare-with", nargs="*", default=(), help="other methods' checkpoints, scored side by side")
    parser.add_argument("--window", type=float, default=WINDOW_S, help=f"window length in seconds ({WINDOW_S})")
    parser.add_argument("--hop", type=float, default=HOP_S, help=f"seconds between window starts ({HOP_S})")
    parser.add_argument("--drop", nargs="*", default=(), help="modalities to leave out: audio, text, vision")
    parser.add_argument(
        "--transcribe",
        metavar="MODEL",
        help="opt-in: transcribe the soundtrack for the text with this Whisper model (owner/name[@revision] on the "
        "Hugging Face Hub, downloaded once; or a local directory) when no transcript is given",
    )
    person = parser.add_mutually_exclusive_group()
    person.add_argument("--enrol", metavar="CLIP", help="read the clip relative to this calm recording of the person")
    person.add_argument("--profile", metavar="FILE", help="a saved person profile (.json or .safetensors)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device, compare_with=args.compare_with)
    try:
        profile = load_profile(predictor, args.enrol, args.profile)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=100, unit="%", desc=Path(args.clip).name) as bar:

        def progress(fraction: float, stage: str) -> None:
            bar.set_postfix_str(stage, refresh=False)
            bar.update(round(100 * fraction) - bar.n)

        try:
            result = predictor.predict_clip(
                args.clip,
                transcript=args.transcript,
                text=args.text,
                window_s=args.window,
                hop_s=args.hop,
                methods=predictor.methods,
                drop=args.drop,
                progress=progress,
                transcribe=args.transcribe,
                profile=profile,
            )
        except (UnusableInput, ValueError) as error:
            raise SystemExit(f"error: {error}") from None
    stem = Path(args.clip).stem
    paths = out / f"{stem}.csv", out / f"{stem}.json", out / f"{stem}.annotated.mp4"
    paths[0].write_text(result.csv())
    paths[1].write_text(result.json())
    write_annotated_video(args.clip, result, paths[2])
    for note in result.notes:
        print(f"note: {note}")
    summary = ", ".join(f"{method}: {result.label(method)}" for method in result.methods)
    print(f"{len(result.windows)} windows over {result.duration_s:.1f} s; clip label {summary}")
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
