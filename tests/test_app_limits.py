"""The served app's bounds: upload size, a full queue, concurrent requests on one Predictor, a session's memory and the
ablation exports on disk."""

from __future__ import annotations

import os
import time

import httpx
import pytest
from bad_inputs import FACE, SPEECH, TEXT
from gradio_client import handle_file
from served import served_demo

from mculora.serving import server
from mculora.serving.demo import EXPORT_TTL_S, HISTORY_TURNS, TIMELINE_TURNS, Conversation, DemoCallbacks

# Mixed requests: each modality alone and together, through both endpoints.
REQUESTS = [
    ("/predict", [handle_file(str(FACE)), handle_file(str(SPEECH)), TEXT, True, True, True, None]),
    ("/predict", [handle_file(str(FACE)), None, None, True, True, True, None]),
    ("/predict", [None, handle_file(str(SPEECH)), None, True, True, True, None]),
    ("/predict", [None, None, "I am so sad and alone.", True, True, True, None]),
    ("/ablate", [handle_file(str(FACE)), handle_file(str(SPEECH)), TEXT, True, True, True, None]),
    ("/predict", [handle_file(str(FACE)), handle_file(str(SPEECH)), TEXT, False, True, True, None]),
]


@pytest.mark.slow
def test_concurrent_requests_give_the_sequential_results(predictor, demo_checkpoint):
    with served_demo(predictor, demo_checkpoint) as (_, client):
        sequential = [client.predict(*args, api_name=endpoint) for endpoint, args in REQUESTS]
        jobs = [client.submit(*args, api_name=endpoint) for endpoint, args in REQUESTS * 4]
        concurrent = [job.result(timeout=300) for job in jobs]
    assert server.CONCURRENCY > 1  # otherwise nothing here ran at the same time
    for index, result in enumerate(concurrent):
        expected = sequential[index % len(REQUESTS)]
        rows = zip(result.get("rows", [result]), expected.get("rows", [expected]), strict=True)
        for got, want in rows:
            assert got["label"] == want["label"]
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


@pytest.mark.slow
def test_a_full_queue_answers_busy_at_once(predictor, demo_checkpoint):
    with served_demo(predictor, demo_checkpoint, queue_size=1) as (_, client):
        endpoint, args = REQUESTS[4]  # the ablation of all three modalities: the slowest request
        jobs = [client.submit(*args, api_name=endpoint) for _ in range(16)]
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(job.result(timeout=300))
            except Exception as error:
                outcomes.append(str(error))
        busy = [o for o in outcomes if isinstance(o, str)]
        assert busy and all("Queue is full" in o and "try again" in o for o in busy), busy
        assert len(busy) < len(jobs)
        # Once the burst is over, the server answers normally again.
        assert client.predict(*args, api_name=endpoint)["rows"][0]["combination"] == "atv"


@pytest.mark.slow
def test_uploads_over_the_limit_are_refused_with_the_limit(predictor, demo_checkpoint, tmp_path):
    limit = 50 * 1024 * 1024
    assert server.MAX_UPLOAD == "50mb"
    big = tmp_path / "big.wav"
    with big.open("wb") as handle:
        handle.truncate(limit + 1)
    with served_demo(predictor, demo_checkpoint) as (_, client):
        # gradio_client reads the limit from the server and refuses before sending ...
        with pytest.raises(Exception, match=f"exceeds the maximum file size of {limit} bytes"):
            client.predict(None, handle_file(str(big)), TEXT, True, True, True, None, api_name="/predict")
        # ... and the server itself refuses a client that sends anyway, without storing the file.
        with big.open("rb") as handle:
            response = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload", files={"files": handle}, timeout=60)
        assert response.status_code == 413 and f"maximum allowed size of {limit} bytes" in response.text
        assert client.predict(None, None, TEXT, True, True, True, None, api_name="/predict")["used"] == ["text"]


def test_a_conversation_keeps_a_bounded_memory(predictor):
    callbacks = DemoCallbacks(predictor)
    conversation = Conversation()
    for turn in range(HISTORY_TURNS + 3):
        conversation = callbacks.predict_view(
            None, None, f"turn {turn}: I am happy", None, True, True, True, True, conversation
        )[7]
    assert len(conversation.features) == HISTORY_TURNS and len(conversation.turns) == HISTORY_TURNS + 3
    features, label = conversation.features[-1], conversation.turns[-1]
    for _ in range(TIMELINE_TURNS + 5):
        conversation.add(features, *label)
    assert len(conversation.features) == HISTORY_TURNS and len(conversation.turns) == TIMELINE_TURNS


def test_old_ablation_exports_are_deleted(predictor):
    callbacks = DemoCallbacks(predictor)
    *_, old_csv, _ = callbacks.ablate_view(None, None, TEXT, None, True, True, True)
    stale = time.time() - EXPORT_TTL_S - 60
    os.utime(os.path.dirname(old_csv), (stale, stale))
    *_, new_csv, _ = callbacks.ablate_view(None, None, TEXT, None, True, True, True)
    assert not os.path.exists(old_csv) and os.path.exists(new_csv)
