"""Timed transcripts (SubRip ``.srt`` and WebVTT ``.vtt``) -> cues, and the text each window of a clip overlaps.

Both formats are blocks separated by blank lines; a block's timing line is ``start --> end``. SRT numbers its blocks
and writes ``00:00:01,500``; WebVTT starts with ``WEBVTT``, may name its cues, writes ``00:01.500`` (hours optional)
and may put cue settings after the end time and voice or style tags in the text. The format is told from the content,
not from the file name (uploads are often renamed). A file that is neither gets `UnusableInput` naming the first
line that does not fit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mculora.preprocess import UnusableInput

# A two-minute clip's transcript is a few kilobytes; a megabyte is not a transcript.
MAX_TRANSCRIPT_BYTES = 1_000_000

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str


def read_transcript(path: str | os.PathLike) -> list[Cue]:
    """The cues of an SRT or WebVTT file, in time order; `UnusableInput` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UnusableInput(f"could not read transcript {path.name}: no such file")
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise UnusableInput(f"the transcript {path.name} is over {MAX_TRANSCRIPT_BYTES // 1_000_000} MB")
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnusableInput(f"the transcript {path.name} is not UTF-8 text (SRT or WebVTT)") from None
    return parse_transcript(content, f"the transcript {path.name}")


def parse_transcript(content: str, name: str = "the transcript") -> list[Cue]:
    """Cues of SRT or WebVTT text; ``name`` is how messages call it."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    webvtt = bool(lines) and lines[0].lstrip("\ufeff").startswith("WEBVTT")
    kind = "WebVTT" if webvtt else "SRT"
    cues: list[Cue] = []
    for number, block in _blocks(lines[1:] if webvtt else lines, first_line=2 if webvtt else 1):
        if webvtt and block[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        # The timing line comes first, or after a cue number (SRT) / a cue identifier (WebVTT).
        timing_at = 0 if "-->" in block[0] or len(block) == 1 else 1
        if not (timing := _TIMING.match(block[timing_at])):
            raise UnusableInput(
                f"{name} is not SRT or WebVTT: line {number + timing_at} should be a timing line "
                f"like '00:00:01,000 --> 00:00:02,500', not {block[timing_at][:60]!r}"
            )
        start, end = _seconds(timing.groups()[:4]), _seconds(timing.groups()[4:])
        if end < start:
            raise UnusableInput(f"{name} has a {kind} cue ending before it starts (line {number})")
        text = " ".join(_TAG.sub("", line).strip() for line in block[timing_at + 1 :]).strip()
        if text:
            cues.append(Cue(start, end, " ".join(text.split())))
    if not cues:
        raise UnusableInput(f"{name} holds no timed text (SRT or WebVTT cues)")
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def _blocks(lines: Sequence[str], first_line: int) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines with the 1-based number of their first line."""
    blocks, current, start = [], [], 0
    for number, line in enumerate(lines, start=first_line):
        if line.strip():
            if not current:
                start = number
            current.append(line.strip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _seconds(parts: Sequence[str | None]) -> float:
    hours, minutes, seconds, fraction = parts
    if int(seconds) > 59 or (hours is not None and int(minutes) > 59):
        raise UnusableInput(f"the transcript has an impossible time {minutes}:{seconds}")
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def window_texts(cues: Sequence[Cue], spans: Sequence[tuple[float, float]]) -> list[str | None]:
    """For each window ``(start, end)``: the text of the cues that overlap it, in time order; None for a window no
    cue overlaps (a cue that only touches a window's edge does not count)."""
    texts = []
    for start, end in spans:
        words = [cue.text for cue in cues if cue.start < end and cue.end > start]
        texts.append(" ".join(words) if words else None)
    return texts
