"""Clips through the served app: /predict_clip through gradio_client equals the library's result, bad clips get a
clear message while the server keeps serving, and the Clip tab's callback gives its figures, table and files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import pytest
from clips import confident_part, two_part_clip
from gradio_client import handle_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.slow

TRANSCRIPT = "1\n00:00:00,000 --> 00:00:02,500\nThis is wonderful!\n\n2\n00:00:05,000 --> 00:00:08,000\nI hate this.\n"


@pytest.fixture(scope="module")
def clip(predictor, shared_data, tmp_path_factory):
    happy, angry = confident_part(predictor, shared_data, "happiness"), confident_part(predictor, shared_data, "anger")
    return two_part_clip(tmp_path_factory.mktemp("app_clips") / "talk.webm", happy, angry)


@pytest.fixture(scope="module")
def transcript(tmp_path_factory):
    path = tmp_path_factory.mktemp("transcripts") / "talk.srt"
    path.write_text(TRANSCRIPT)
    return path


def test_predict_clip_endpoint_matches_the_library(served_app, predictor, clip, transcript):
    _, client = served_app
    api = client.predict(
        handle_file(clip), handle_file(transcript), "", True, True, True, None, api_name="/predict_clip"
    )
    direct = predictor.predict_clip(clip, transcript=transcript).to_dict()
    assert api["label"] == direct["label"] and api["clip"] == "talk.webm"
    assert len(api["windows"]) == len(direct["windows"]) == 7
    for a, d in zip(api["windows"], direct["windows"], strict=True):
        assert (a["start"], a["face"], a["speech"], a["text"]) == (d["start"], d["face"], d["speech"], d["text"])
        for ra, rd in zip(a["rows"], d["rows"], strict=True):
            assert ra["combination"] == rd["combination"] and ra["label"] == rd["label"]
            assert ra["probabilities"] == pytest.approx(rd["probabilities"], abs=1e-6)
    dropped = client.predict(handle_file(clip), None, "", False, True, True, None, api_name="/predict_clip")
    assert all(w["missing"]["audio"] == "dropped by the user" for w in dropped["windows"])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("noise.mp4", b"\x00\x01garbage" * 500, "not a video or audio file"),
        ("empty.mp4", b"", "the file is empty"),
        ("notes.txt", b"hello", "not a video or audio file"),
    ],
)
def test_bad_clips_get_a_message_and_the_server_keeps_serving(served_app, clip, tmp_path, name, content, message):
    from gradio_client.exceptions import AppError

    _, client = served_app
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(bad), None, "", True, True, True, None, api_name="/predict_clip")
    assert client.predict(handle_file(clip), None, "", True, True, True, None, api_name="/predict_clip")["windows"]


def test_a_bad_transcript_or_no_clip_gets_a_message(served_app, clip, tmp_path):
    from gradio_client.exceptions import AppError

    _, client = served_app
    bad = tmp_path / "talk.srt"
    bad.write_text("this is not a subtitle file\nat all\n")
    with pytest.raises(AppError, match="not SRT or WebVTT: line 2"):
        client.predict(handle_file(clip), handle_file(bad), "", True, True, True, None, api_name="/predict_clip")
    with pytest.raises(AppError, match="no clip given"):
        client.predict(None, None, "", True, True, True, None, api_name="/predict_clip")
    with pytest.raises(AppError, match="use_text must be true or false"):
        client.predict(handle_file(clip), None, "", True, "yes", True, None, api_name="/predict_clip")


def test_the_clip_tab_callback_and_cancel(predictor, clip, transcript):
    from mculora.serving.demo import ClipJob, DemoCallbacks

    callbacks = DemoCallbacks(predictor)
    job = ClipJob()
    summary, timeline, strip, table, csv_path, json_path, result = callbacks.clip_view(
        str(clip), str(transcript), "", True, True, True, None, False, job, progress=lambda *a, **k: None
    )
    assert f"**mcu-lora: {result.label()}**" in summary and "7 windows of 2 s every 1 s" in summary
    # one line per emotion at the windows' centres, its values the windows' probabilities, and the frames that
    # carried each window's face vector
    assert [trace.name for trace in timeline.data] == [*predictor.labels, "face frames"]
    method = result.methods[0]
    centres = [(w.start + w.end) / 2 for w in result.windows]
    for trace in timeline.data[:-1]:
        assert list(trace.x) == pytest.approx(centres)
        assert list(trace.y) == pytest.approx(
            [w.all_modalities(method).probabilities[trace.name] for w in result.windows]
        )
    frames = {round(t, 6) for w in result.windows for t, _ in w.frame_weights}
    assert {round(t, 6) for t in timeline.data[-1].x} == frames and frames
    # the strip: a row per combination, each cell the label that combination gives the window
    heat = strip.data[0]
    assert list(heat.y)[0] == "atv" and len(heat.x) == 7
    for combination, cells in zip(heat.y, heat.z, strict=True):
        rows = [w.row(method, combination) for w in result.windows]
        expected = [None if r is None else predictor.labels.index(r.label) + 0.5 for r in rows]
        assert list(cells) == expected, combination
    assert table["headers"][:5] == ["seconds", "face", "speech", "text", "all modalities"] and len(table["data"]) == 7
    assert Path(csv_path).read_text().count("\n") == len(result.records()) + 1
    exported = json.loads(Path(json_path).read_text())
    assert exported == json.loads(result.json()) and len(exported["windows"]) == 7
    face_only = callbacks.clip_timeline_view(result, "v").data[0]
    faces = [w.row(method, "v") for w in result.windows]
    expected = [None if r is None else pytest.approx(r.probabilities[face_only.name]) for r in faces]
    assert any(faces) and expected == list(face_only.y)
    video = callbacks.annotated_video_view(str(clip), result, "all")
    # the annotated video decodes: a frame per sampled frame of the clip, its soundtrack as long as the clip
    with av.open(video) as container:
        assert container.streams.video and container.streams.audio
        seconds = float(container.duration / av.time_base)
    assert seconds == pytest.approx(result.duration_s, abs=0.5)

    import gradio as gr

    DemoCallbacks.cancel_clip(job)  # what the Cancel button does while a job runs
    assert job.cancelled
    reports = []

    def progress(fraction, desc=None):
        reports.append(fraction)
        DemoCallbacks.cancel_clip(job)  # pressed while it runs

    with pytest.raises(gr.Error, match="cancelled"):
        callbacks.clip_view(str(clip), None, "", True, True, True, None, False, job, progress=progress)
    assert len(reports) == 1  # stopped at the first report after the press


def test_a_second_clip_waits_its_turn_with_its_place_shown_while_predictions_go_on(
    served_app, predictor, clip, monkeypatch
):
    """Clips score one at a time in a queue of their own: another visitor's clip waits with its position, never
    fails, and a prediction sent meanwhile is answered at once."""
    import threading
    import time

    from gradio_client.utils import Status

    _, client = served_app
    gate, score = threading.Event(), predictor.predict_clip
    calls = []

    def held_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            gate.wait(timeout=120)
        return score(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict_clip", held_first)
    inputs = (handle_file(clip), None, "", True, True, True, None)

    def submitted(state: Status):
        job = client.submit(*inputs, api_name="/predict_clip")
        deadline = time.monotonic() + 60
        while job.status().code is not state and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.status().code is state, job.status()
        return job

    try:
        first = submitted(Status.PROCESSING)
        second = submitted(Status.IN_QUEUE)
        assert second.status().rank == 0  # the place in the clips' queue, as the page shows it
        started = time.perf_counter()
        answer = client.predict(None, None, "What a day!", True, True, True, None, api_name="/predict")
        assert answer["used"] == ["text"] and time.perf_counter() - started < 10
    finally:
        gate.set()
    results = [first.result(timeout=300), second.result(timeout=300)]
    assert all(isinstance(r, dict) and r["windows"] for r in results)
