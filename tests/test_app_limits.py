"""The served app's bounds: upload size, a full queue, concurrent requests on one Predictor, a session's memory and the
ablation exports on disk."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest
from bad_inputs import FACE, SPEECH, TEXT
from gradio_client import handle_file
from gradio_client.utils import Status
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
    """The queue is filled on purpose: the model's thread is held, every worker takes a request that waits on it,
    one more request waits in the queue (size 1), and the next is refused at once; released, all the others finish."""
    endpoint, args = REQUESTS[3]  # text alone: little work on the request threads
    gate = threading.Event()
    holder = threading.Thread(target=predictor.torch_thread.run, args=(gate.wait,), daemon=True)
    holder.start()
    try:
        with served_demo(predictor, demo_checkpoint, queue_size=1) as (_, client):

            def submitted(state: Status):
                job = client.submit(*args, api_name=endpoint)
                deadline = time.monotonic() + 60
                while job.status().code is not state and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert job.status().code is state, job.status()
                return job

            working = [submitted(Status.PROCESSING) for _ in range(server.CONCURRENCY)]
            waiting = submitted(Status.IN_QUEUE)
            with pytest.raises(Exception, match="Queue is full.*try again"):
                client.submit(*args, api_name=endpoint).result(timeout=60)
            gate.set()
            for job in [*working, waiting]:
                assert job.result(timeout=300)["used"] == ["text"]
            # Once the burst is over, the server answers normally again.
            assert client.predict(*args, api_name=endpoint)["used"] == ["text"]
    finally:
        gate.set()
        holder.join(timeout=60)


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
