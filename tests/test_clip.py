"""Scoring clips window by window (mculora.serving.clip) with the shipped model, on clips built from real data: the
timeline follows what the clip shows and says, the exports agree with it, and bad clips get a reason per window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from clips import confident_part, two_part_clip

from mculora.preprocess import UnusableInput
from mculora.preprocess.clip import ClipReader
from mculora.serving.annotate import write_annotated_video
from mculora.serving.clip import MAX_WINDOWS, ClipCancelled, window_spans
from mculora.serving.clip_result import ALL
from mculora.serving.clip_writer import compose_clip
from mculora.serving.plots import label_colours

HALF_S = 4.0
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def parts(predictor, shared_data):
    return confident_part(predictor, shared_data, "happiness"), confident_part(predictor, shared_data, "anger")


@pytest.fixture(scope="module")
def two_label_clip(parts, tmp_path_factory):
    return two_part_clip(tmp_path_factory.mktemp("clips") / "happy_then_angry.mp4", *parts, half_s=HALF_S)


@pytest.fixture(scope="module")
def scored(predictor, two_label_clip):
    return predictor.predict_clip(two_label_clip)


def test_window_grid():
    assert window_spans(8.0) == [(float(k), float(k + 2)) for k in range(7)]
    assert window_spans(3.5) == [(0.0, 2.0), (1.0, 3.0), (2.0, 3.5)]  # the last window ends with the clip
    assert window_spans(1.2) == [(0.0, 1.2)]  # shorter than a window: one window
    assert window_spans(4.0, window_s=1.0, hop_s=0.5)[-1] == (3.0, 4.0)
    assert len(window_spans(120.0, 0.5, 0.25)) == 479 <= MAX_WINDOWS
    with pytest.raises(ValueError, match="at most 480"):
        window_spans(121.0, 0.5, 0.25)
    for window, hop in [(0.4, 0.25), (10.5, 1.0), (2.0, 0.2), (2.0, 2.5)]:
        with pytest.raises(ValueError):
            window_spans(10.0, window, hop)


@pytest.mark.parametrize("combination", ["a", "v", "av"])
def test_the_timeline_switches_label_within_one_hop_of_the_boundary(scored, combination):
    """Windows wholly before the boundary carry the first part's label under the combination, windows wholly after
    it the second's; only the window that straddles it may go either way."""
    labels = {"before": [], "after": []}
    for window in scored.windows:
        row = window.row("mcu-lora", combination)
        if row is None:
            continue
        if window.end <= HALF_S:
            labels["before"].append(row.label)
        elif window.start >= HALF_S:
            labels["after"].append(row.label)
    assert len(labels["before"]) >= 2 and len(labels["after"]) >= 2, labels
    assert set(labels["before"]) == {"happiness"} and set(labels["after"]) == {"anger"}, labels


def test_windows_report_faces_speech_and_every_combination(scored):
    assert scored.duration_s == pytest.approx(2 * HALF_S, abs=0.05)
    assert [round(w.start, 3) for w in scored.windows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for window in scored.windows:
        assert window.face and window.faces_seen == 1
        assert window.missing.get("text") == "not given"
        combinations = [row.combination for row in window.rows]
        assert combinations == (["av", "a", "v"] if window.speech else ["v"])
        for row in window.rows:
            assert sum(row.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(w.speech for w in scored.windows) >= 6


def test_the_summary_pools_windows_by_certainty_not_a_plain_mean(scored):
    """Recomputed here from the rows: weights 1 - entropy / log(7); and unlike the plain mean it follows confident
    windows (checked on a made-up pair of windows in the unit test below)."""
    rows = [w.all_modalities("mcu-lora") for w in scored.windows]
    p = np.array([[row.probabilities[label] for label in scored.labels] for row in rows])
    weights = 1 - (-(p * np.log(p)).sum(axis=1)) / np.log(len(scored.labels))
    expected = (weights[:, None] * p).sum(axis=0) / weights.sum()
    pooled = scored.summary["mcu-lora"][ALL]
    np.testing.assert_allclose([pooled[label] for label in scored.labels], expected, rtol=1e-6)
    assert scored.label() in ("happiness", "anger")


def test_pooling_favours_the_confident_window():
    from mculora.serving.clip import _pooled
    from mculora.serving.clip_result import ClipWindow
    from mculora.serving.predictor import CombinationRow

    labels = ["neutral", "sadness"]
    unsure = [CombinationRow("v", "neutral", {"neutral": 0.55, "sadness": 0.45})] * 3
    sure = [CombinationRow("v", "sadness", {"neutral": 0.02, "sadness": 0.98})]
    windows = [
        ClipWindow(i, i, i + 2, True, 1, False, None, {}, rows) for i, rows in enumerate([*[unsure[:1]] * 3, sure])
    ]
    pooled = _pooled(windows, "mcu-lora", labels)[ALL]
    assert pooled["sadness"] > 0.5  # the plain mean of the four windows gives sadness 0.58 ... and neutral 0.42
    assert pooled["sadness"] > np.mean([0.45, 0.45, 0.45, 0.98]) + 0.2


def test_exports_hold_every_window_and_combination(scored):
    records = scored.records()
    assert len(records) == sum(len(w.rows) for w in scored.windows)
    csv_lines = scored.csv().splitlines()
    assert len(csv_lines) == len(records) + 1
    assert csv_lines[0].startswith("window,start_s,end_s,method,combination,all_modalities,label,anger")
    record = json.loads(scored.json())
    assert record["label"] == {"mcu-lora": scored.label()}
    assert [w["start"] for w in record["windows"]] == [w.start for w in scored.windows]
    assert record["windows"][0]["rows"][0]["combination"] == "av"


def test_the_annotated_video_has_the_clip_duration_soundtrack_and_labels(scored, two_label_clip, tmp_path):
    out = write_annotated_video(two_label_clip, scored, tmp_path / "annotated.mp4")
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        fps = float(video.average_rate)
        frames = [(float(frame.time), frame.to_ndarray(format="rgb24")) for frame in container.decode(video)]
        assert audio.codec_context.name == "aac" and audio.rate == 16_000
    with av.open(str(two_label_clip)) as original:
        original_frames = sum(1 for _ in original.decode(video=0))
    assert len(frames) == original_frames
    duration = frames[-1][0] + 1 / fps
    assert abs(duration - scored.duration_s) <= 1 / fps
    # The band's colour (right of its text) at each window's centre names the label the CSV has for that window.
    colours = {
        label: np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]) for label, c in label_colours(scored.labels).items()
    }
    csv_labels = {r["window"]: r["label"] for r in scored.records() if r["all_modalities"]}
    for window in scored.windows:
        centre = (window.start + window.end) / 2
        _, picture = min(frames, key=lambda f: abs(f[0] - centre))
        band = picture[5:15, -60:-10].reshape(-1, 3).mean(axis=0)
        shown = min(colours, key=lambda label: np.abs(colours[label] - band).sum())
        assert shown == csv_labels[window.index]


def test_the_annotated_soundtrack_is_the_clips(scored, two_label_clip, tmp_path):
    from mculora.preprocess.clip import ClipReader

    out = write_annotated_video(two_label_clip, scored, tmp_path / "annotated.mp4")
    original, annotated = ClipReader(two_label_clip), ClipReader(out)
    for reader in (original, annotated):
        list(reader.frames())
    n = min(original.audio.size, annotated.audio.size)
    assert abs(original.audio.size - annotated.audio.size) < 0.05 * 16_000
    correlation = np.corrcoef(original.audio[:n], annotated.audio[:n])[0, 1]
    assert correlation > 0.95


def test_a_clip_without_audio_gives_vision_only_windows_with_the_reason(predictor, parts, tmp_path):
    happy, _ = parts
    path = compose_clip(tmp_path / "mute.mp4", [(happy.face, None, 3.0)], sample_rate=None)
    result = predictor.predict_clip(path)
    assert len(result.windows) == 2
    for window in result.windows:
        assert [row.combination for row in window.rows] == ["v"] and not window.speech
        assert window.missing["audio"] == "the clip has no audio track"


def test_voice_only_silent_and_faceless_clips(predictor, parts, tmp_path):
    happy, _ = parts
    voice = compose_clip(tmp_path / "voice.m4a.mp4", [(None, happy.speech, 3.0)], width=None)
    result = predictor.predict_clip(voice)
    assert all(w.missing["vision"] == "the clip has no video stream" for w in result.windows)
    assert {row.combination for w in result.windows for row in w.rows} <= {"a"}
    silent = compose_clip(tmp_path / "silent.mp4", [(happy.face, np.zeros(16_000, np.float32), 2.0)])
    result = predictor.predict_clip(silent)
    assert result.windows[0].missing["audio"].startswith("the soundtrack is silent")
    with pytest.raises(UnusableInput, match="nothing in clip .* could be scored"):
        predictor.predict_clip(compose_clip(tmp_path / "blank.mp4", [(None, None, 2.0)], sample_rate=None))


def test_a_transcript_gives_the_windows_their_text(predictor, two_label_clip, tmp_path):
    transcript = tmp_path / "talk.srt"
    transcript.write_text(
        "1\n00:00:00,000 --> 00:00:02,900\nThis is wonderful, I love it!\n\n"
        "2\n00:00:05,000 --> 00:00:08,000\nI am furious with you.\n\n"
        "3\n00:00:30,000 --> 00:00:31,000\nAfter the end.\n"
    )
    result = predictor.predict_clip(two_label_clip, transcript=transcript)
    texts = [w.text for w in result.windows]
    assert texts[0] == texts[1] == "This is wonderful, I love it!"
    assert texts[3] is None and result.windows[3].missing["text"] == "no transcript cue overlaps this window"
    assert texts[-1] == "I am furious with you."
    assert "atv" in [row.combination for row in result.windows[0].rows]
    assert any("1 transcript cue(s) start after the clip's end" in note for note in result.notes)
    typed = predictor.predict_clip(two_label_clip, text="What a day.", drop=["audio"])
    assert all(w.text == "What a day." and w.missing["audio"] == "dropped by the user" for w in typed.windows)
    assert {row.combination for w in typed.windows for row in w.rows} == {"tv", "t", "v"}


def test_progress_is_reported_and_can_cancel(predictor, two_label_clip):
    seen = []
    predictor.predict_clip(two_label_clip, progress=lambda fraction, stage: seen.append(fraction))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 10

    def cancel(fraction, stage):
        if fraction > 0.3:
            raise ClipCancelled

    with pytest.raises(ClipCancelled):
        predictor.predict_clip(two_label_clip, progress=cancel)


def test_a_recording_without_a_declared_length_reports_progress_and_cancels_while_read(predictor, parts, tmp_path):
    """Browsers record WebM without a length in its header: progress then follows the bytes read."""
    happy, _ = parts
    path = compose_clip(
        tmp_path / "recorded.webm", [(happy.face, None, 8.0)], sample_rate=None, container_options={"live": "1"}
    )
    assert ClipReader(path).expected_seconds is None
    seen = []
    predictor.predict_clip(path, progress=lambda fraction, stage: seen.append((fraction, stage)))
    reading = [fraction for fraction, stage in seen if stage.startswith("reading")]
    assert reading == sorted(reading) and len(set(reading)) > 5 and 0.6 < reading[-1] <= 0.85

    stages = []

    def cancel(fraction, stage):
        stages.append(stage)
        if fraction > 0.3:
            raise ClipCancelled

    with pytest.raises(ClipCancelled):
        predictor.predict_clip(path, progress=cancel)
    assert stages[-1].startswith("reading the clip")  # stopped while the clip was being read


@pytest.mark.slow
def test_the_command_writes_the_three_files(two_label_clip, tmp_path, demo_checkpoint):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mculora.cli",
            "clip",
            str(two_label_clip),
            "--annotate",
            "--out",
            str(tmp_path),
            "--checkpoint",
            str(demo_checkpoint),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    name = two_label_clip.name
    csv_text = (tmp_path / f"{name}.csv").read_text()
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert len(record["windows"]) == 7 and csv_text.count("\n") > 7
    with av.open(str(tmp_path / f"{name}.annotated.mp4")) as video:
        assert {s.type for s in video.streams} == {"video", "audio"}
    assert "1 scored, 0 already done, 0 failed" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mculora.cli", "clip", str(tmp_path / "missing.mp4"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "no such file" in bad.stderr


def test_portrait_video_and_several_faces(predictor, parts, tmp_path):
    """A phone held upright (a portrait frame), and frames with three faces: the largest is scored and the window
    says how many were seen."""
    from PIL import Image

    from mculora.serving.clip_writer import ClipWriter

    happy, _ = parts
    portrait = compose_clip(tmp_path / "portrait.mp4", [(happy.face, happy.speech, 2.0)], width=360, height=640)
    result = predictor.predict_clip(portrait)
    assert result.windows[0].face and result.windows[0].faces_seen == 1

    astronaut = Image.open(ROOT / "assets" / "examples" / "astronaut.jpg").convert("RGB").crop((55, 0, 175, 120))
    frame = np.full((720, 1280, 3), 200, np.uint8)
    frame[100:400, 100:400] = np.asarray(astronaut.resize((300, 300)))
    frame[300:500, 500:700] = frame[300:500, 800:1000] = np.asarray(astronaut.resize((200, 200)))
    with ClipWriter(tmp_path / "two.mp4", 1280, 720, fps=10) as writer:
        for _ in range(20):
            writer.add_frame(frame)
    result = predictor.predict_clip(tmp_path / "two.mp4")
    assert all(w.face and w.faces_seen >= 2 for w in result.windows)  # the mesh finds two or three of the three
    track = result.tracks[0]
    assert track.box[0] < 400 and track.box[2] < 420  # the larger face, on the left
    from mculora.serving.demo import clip_summary

    assert "more than one face: the largest one is scored" in clip_summary(result)
