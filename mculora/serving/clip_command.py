"""The clip command: recorded clips scored window by window, each clip's exports and one summary written.

    mculora clip talk.mp4 recordings/ "more/*.webm" [--out DIR] [--annotate] [--overwrite] [--shard K/N]
        [--transcript talk.srt | --text "..."] [--window 2 --hop 1] [--compare-with DIR ...]
        [--enrol CLIP | --profile FILE]

PATHs are files, folders (searched recursively for media files) and globs. The model loads once. Each clip, e.g.
talk.mp4, gives ``DIR/talk.mp4.csv`` and ``DIR/talk.mp4.json`` (and ``DIR/talk.mp4.annotated.mp4`` with
``--annotate``), under the clip's
folder relative to the PATH it was found through; ``DIR/summary.csv`` has a row per clip, method and combination
(`mculora.serving.clip_result.summary_records`), or the reason a clip could not be scored. A clip whose exports exist
is not scored again (its summary rows are read back from its JSON) unless ``--overwrite``. ``--shard K/N`` takes the
K-th of N stable shares of the clips (by a hash of each clip's relative path), so that N jobs of a job array split a
corpus without talking to each other; each writes ``summary-K-of-N.csv`` and the summaries concatenate.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mculora.person import PersonProfile
from mculora.preprocess import UnusableInput
from mculora.serving.annotate import write_annotated_video
from mculora.serving.clip import HOP_S, WINDOW_S
from mculora.serving.clip_result import SUMMARY_COLUMNS, summary_records
from mculora.serving.predictor import Predictor

# What a folder is searched for: the containers the clip reader is tested on, and plain audio files.
MEDIA_SUFFIXES = frozenset(
    (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".flv", ".mpg", ".mpeg", ".ts", ".3gp", ".wmv")
    + (".m4a", ".mp3", ".wav", ".flac", ".ogg", ".opus", ".aac")
)


@dataclass(frozen=True)
class ClipJob:
    """A clip to score and where its exports go: ``relative`` is its path below the PATH it was found through."""

    path: Path
    relative: Path

    def output(self, out: Path, suffix: str) -> Path:
        """The export's path: the clip's whole file name and ``suffix``, so talk.mp4 and talk.webm do not collide."""
        return out / self.relative.parent / f"{self.relative.name}{suffix}"


def find_clips(paths: Sequence[str]) -> list[ClipJob]:
    """Files, folders (recursively, media files only) and globs, in order, each clip once. A file named directly is
    kept whatever its suffix (the reader says whether it can read it)."""
    jobs: dict[Path, ClipJob] = {}
    for given in paths:
        matches = sorted(glob.glob(given, recursive=True)) if glob.has_magic(given) else [given]
        for match in map(Path, matches):
            if match.is_dir():
                for path in sorted(p for p in match.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file()):
                    jobs.setdefault(path.resolve(), ClipJob(path, path.relative_to(match)))
            else:
                jobs.setdefault(match.resolve(), ClipJob(match, Path(match.name)))
    return list(jobs.values())


def shard(jobs: list[ClipJob], k: int, n: int) -> list[ClipJob]:
    """The K-th (1-based) of N shares: a clip belongs to the share its relative path hashes to, on every machine."""
    return [job for job in jobs if int(hashlib.sha1(job.relative.as_posix().encode()).hexdigest(), 16) % n == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


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


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mculora clip", description="Score recorded clips window by window under every combination."
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="clip files, folders of clips, or globs")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--transcript", help="an .srt or .vtt transcript; its cues give each window's text")
    source.add_argument("--text", help="a sentence that applies to every window")
    parser.add_argument("--out", default=".", help="folder for the exports and summary.csv (default: .)")
    parser.add_argument("--annotate", action="store_true", help="also write each clip as an annotated MP4")
    parser.add_argument("--overwrite", action="store_true", help="score clips whose exports already exist again")
    parser.add_argument("--shard", type=parse_shard, metavar="K/N", help="take the K-th of N stable shares of clips")
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
    person.add_argument("--enrol", metavar="CLIP", help="read the clips relative to this calm recording of the person")
    person.add_argument("--profile", metavar="FILE", help="a saved person profile (.json or .safetensors)")
    parser.add_argument("--device", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    jobs = find_clips(args.paths)
    if args.shard:
        jobs = shard(jobs, *args.shard)
    if not jobs:
        raise SystemExit("error: no clips found in " + ", ".join(args.paths))
    out = Path(args.out)
    summary_path = out / ("summary.csv" if not args.shard else "summary-{}-of-{}.csv".format(*args.shard))
    predictor = Predictor.from_pretrained(args.checkpoint, device=args.device, compare_with=args.compare_with)
    try:
        profile = load_profile(predictor, args.enrol, args.profile)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None

    rows: list[dict] = []
    counts = {"scored": 0, "already done": 0, "failed": 0}
    with tqdm(
        total=len(jobs), unit="clip", bar_format="{l_bar}{bar}| {n:.1f}/{total} clips [{elapsed}<{remaining}]"
    ) as bar:
        for number, job in enumerate(jobs):
            bar.set_description(job.relative.as_posix()[-40:])
            try:
                record, status = _scored(predictor, job, out, args, profile, bar, number)
            except (UnusableInput, ValueError, OSError) as error:
                rows.append({"clip": job.relative.as_posix(), "status": f"error: {error}"})
                counts["failed"] += 1
                tqdm.write(f"{job.relative}: {error}", file=sys.stderr)
            else:
                rows.extend({**row, "status": status} for row in summary_records(record, job.relative.as_posix()))
                counts[status] += 1
            bar.update(number + 1 - bar.n)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    with summary_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[*SUMMARY_COLUMNS, *predictor.labels, "status"], restval="")
        writer.writeheader()
        writer.writerows(rows)
    print(", ".join(f"{count} {what}" for what, count in counts.items()) + f"; wrote {summary_path}")
    if counts["failed"] == len(jobs):
        raise SystemExit(1)


def _scored(predictor: Predictor, job: ClipJob, out: Path, args, profile, bar, number: int) -> tuple[dict, str]:
    """``job``'s JSON record (read back when its exports exist and not ``--overwrite``) and whether it was scored."""
    exports = [job.output(out, ".csv"), job.output(out, ".json")]
    annotated = job.output(out, ".annotated.mp4")
    if not args.overwrite and all(p.is_file() for p in exports) and (annotated.is_file() or not args.annotate):
        return json.loads(exports[1].read_text()), "already done"

    def progress(fraction: float, stage: str) -> None:
        bar.set_postfix_str(stage, refresh=False)
        bar.update(number + fraction - bar.n)

    result = predictor.predict_clip(
        str(job.path),
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
    exports[0].parent.mkdir(parents=True, exist_ok=True)
    exports[0].write_text(result.csv())
    exports[1].write_text(result.json())
    if args.annotate:
        write_annotated_video(job.path, result, annotated)
    for note in result.notes:
        tqdm.write(f"{job.relative}: note: {note}")
    return result.to_dict(), "scored"


if __name__ == "__main__":
    main()
