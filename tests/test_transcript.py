"""Timed transcripts: SRT and WebVTT cues, the text each window overlaps, and malformed files."""

from __future__ import annotations

import pytest

from mculora.preprocess import UnusableInput
from mculora.preprocess.transcript import MAX_TRANSCRIPT_BYTES, Cue, parse_transcript, read_transcript, window_texts

SRT = """1
00:00:00,500 --> 00:00:02,000
I can't believe
you did that.

2
00:00:01,500 --> 00:00:03,250
<i>Really?</i>

3
00:00:06,000 --> 00:00:07,000
Later, after a gap.
"""

VTT = """WEBVTT - a talk

NOTE this comment is not a cue

intro
00:00.500 --> 00:02.000 align:start position:10%
<v Ann>I can't believe</v>
you did that.

00:00:01.500 --> 00:00:03.250
Really?

STYLE
::cue { color: yellow }

00:06.000 --> 00:07.000
Later, after a gap.
"""


@pytest.mark.parametrize("content", [SRT, VTT, SRT.replace("\n", "\r\n"), "\ufeff" + VTT])
def test_srt_and_webvtt_give_the_same_cues(content):
    assert parse_transcript(content) == [
        Cue(0.5, 2.0, "I can't believe you did that."),
        Cue(1.5, 3.25, "Really?"),
        Cue(6.0, 7.0, "Later, after a gap."),
    ]


def test_windows_take_the_cues_they_overlap_in_order():
    cues = parse_transcript(SRT)
    spans = [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.25, 5.25), (4.0, 6.0), (5.0, 7.0), (7.0, 8.0)]
    assert window_texts(cues, spans) == [
        "I can't believe you did that. Really?",  # both cues overlap: joined in time order
        "I can't believe you did that. Really?",
        "Really?",  # the first cue ends exactly at 2.0: touching is not overlapping
        None,  # a gap between cues
        None,
        "Later, after a gap.",
        None,
    ]


def test_cues_are_sorted_and_empty_cues_dropped():
    content = (
        "2\n00:00:05,000 --> 00:00:06,000\nsecond\n\n"
        "1\n00:00:01,000 --> 00:00:02,000\nfirst\n\n"
        "3\n00:00:07,000 --> 00:00:08,000\n\n"
    )
    assert [cue.text for cue in parse_transcript(content)] == ["first", "second"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "holds no timed text"),
        ("just some words\nwithout any timing\n", "line 2 should be a timing line"),
        ("1\n00:00:01 --> 00:00:02\nno milliseconds\n", "line 2 should be a timing line"),
        ("1\n00:00:03,000 --> 00:00:02,000\nbackwards\n", "ending before it starts"),
        ("1\n00:00:75,000 --> 00:01:20,000\nseventy-five seconds\n", "impossible time"),
        ("WEBVTT\n\nhello\nworld\n", "line 4 should be a timing line"),
        ('{"text": "json is not a transcript"}', "should be a timing line"),
    ],
)
def test_malformed_transcripts_say_what_is_wrong(content, message):
    with pytest.raises(UnusableInput, match=message):
        parse_transcript(content)


def test_files_are_read_as_utf8_with_limits(tmp_path):
    good = tmp_path / "talk.srt"
    good.write_text(SRT, encoding="utf-8")
    assert len(read_transcript(good)) == 3
    binary = tmp_path / "talk.vtt"
    binary.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(UnusableInput, match="not UTF-8"):
        read_transcript(binary)
    huge = tmp_path / "huge.srt"
    huge.write_text(SRT * (MAX_TRANSCRIPT_BYTES // len(SRT) + 1))
    with pytest.raises(UnusableInput, match="over 1 MB"):
        read_transcript(huge)
    with pytest.raises(UnusableInput, match="no such file"):
        read_transcript(tmp_path / "missing.srt")
