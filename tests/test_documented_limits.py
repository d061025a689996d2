"""The documented limits are the code's: every number in the limits table of docs/reference/limits.md (and the
clean-up times above it, and the ZeroGPU duration in docs/reference/hosting.md) is read from the page and compared
with the constant that enforces it, so neither can change alone."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from mculora.preprocess import audio, text, transcript, vision
from mculora.preprocess import clip as clip_reader
from mculora.serving import clip, demo, server

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
LIMITS = (REFERENCE / "limits.md").read_text()
HOSTING = (REFERENCE / "hosting.md").read_text()


def limit_row(name: str) -> str:
    match = re.search(rf"^\| {re.escape(name)} \| (.+?) \|", LIMITS, re.MULTILINE)
    assert match, f"no row {name!r} in the limits table"
    return match[1]


def numbers(cell: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", cell)]


def video_cap() -> tuple[float, int]:
    """(frames per second, most frames) of the short-video input, from `read_video_frames`' defaults."""
    defaults = inspect.signature(vision.read_video_frames).parameters
    return defaults["fps"].default, defaults["max_frames"].default


@pytest.mark.parametrize(
    "row, expected",
    [
        ("Upload size", [int(server.MAX_UPLOAD.removesuffix("mb"))]),
        ("Audio", [audio.READ_SECONDS, audio.MAX_SECONDS]),
        ("Image", [vision.MAX_IMAGE_PIXELS / 1e6, vision.MAX_IMAGE_SIDE, vision.MAX_ASPECT_RATIO, 1]),
        ("Video", [video_cap()[1] / video_cap()[0], video_cap()[0], vision.MAX_VIDEO_SIDE]),
        ("Clip", [clip_reader.MAX_CLIP_SECONDS, clip_reader.FRAME_RATE, vision.MAX_VIDEO_SIDE]),
        ("Clip windows", [clip.MIN_WINDOW_S, clip.MAX_WINDOW_S, clip.MIN_HOP_S, clip.MAX_WINDOWS]),
        ("Transcript", [8, transcript.MAX_TRANSCRIPT_BYTES / 1e6]),  # "UTF-8, up to 1 MB"
        ("Text", [text.MAX_CHARACTERS]),
        ("Conversation mode", [demo.HISTORY_TURNS, demo.TIMELINE_TURNS]),
        ("Queue", [server.CONCURRENCY, server.QUEUE_SIZE]),
    ],
)
def test_the_limits_table_states_the_enforced_values(row, expected):
    assert numbers(limit_row(row)) == [float(value) for value in expected]


def test_the_zero_gpu_duration_and_the_clean_up_times():
    assert f"@spaces.GPU(duration={server.GPU_SECONDS})" in HOSTING
    assert f"(the page uses {clip.WINDOW_S:g} s every {clip.HOP_S:g} s)" in LIMITS
    # "deleted an hour after upload (checked every 10 minutes; the ablation's ... exports too)": the page's words.
    every, older_than = server.CACHE_CLEANUP
    words = {"an hour": 3600, "10 minutes": 600}
    match = re.search(r"deleted (an hour) after upload \(checked every (10 minutes)", LIMITS)
    assert match, "the limits page no longer states the clean-up times"
    assert (older_than, demo.EXPORT_TTL_S, every) == (words[match[1]], words[match[1]], words[match[2]])


def test_the_readme_states_the_clip_windows_the_page_uses():
    readme = (REFERENCE.parents[1] / "README.md").read_text()
    match = re.search(r"windows of (\d+(?:\.\d+)?) s every (second|\d+(?:\.\d+)? s)", readme)
    assert match, "the README no longer states the clip windows"
    hop = 1.0 if match[2] == "second" else float(match[2].removesuffix(" s"))
    assert (float(match[1]), hop) == (clip.WINDOW_S, clip.HOP_S)
