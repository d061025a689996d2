"""The demo served for real and called through gradio_client, compared with the Predictor on the same inputs."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradio_client import handle_file  # noqa: E402

from mculora.serving import server  # noqa: E402

FACE = ROOT / "assets" / "examples" / "astronaut.jpg"
TEXT = "I can't believe it, this is wonderful news!"


@pytest.fixture(scope="module")
def speech(shared_data):
    return shared_data / "emodb" / "wav" / "03a01Wa.wav"  # anger, speaker 03


def _same(api: dict, direct, tolerance=1e-5):
    assert api["label"] == direct.label
    assert api["used"] == direct.used and api["missing"] == direct.missing
    for label, p in direct.probabilities.items():
        # The page passes the uploaded files on as files: the same decoding as the direct call.
        assert api["probabilities"][label] == pytest.approx(p, abs=tolerance)
    parts = api["contributions"]
    for label in direct.probabilities:
        total = parts["base"][label] + parts["shared"][label] + parts["adapter"][label]
        assert total == pytest.approx(parts["logits"][label], abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("use", [(True, True, True), (False, True, True), (True, False, True), (True, True, False)])
def test_predict_endpoint_matches_the_predictor(served_app, predictor, speech, use):
    _, client = served_app
    api = client.predict(handle_file(FACE), handle_file(speech), TEXT, *use, api_name="/predict")
    dropped = [m for m, on in zip(("audio", "text", "vision"), use, strict=True) if not on]
    _same(api, predictor.predict(image=str(FACE), audio=str(speech), text=TEXT, drop=dropped))
    assert all(api["missing"][m] == "dropped by the user" for m in dropped)


@pytest.mark.slow
def test_ablate_endpoint_matches_predict_combinations(served_app, predictor, speech):
    _, client = served_app
    api = client.predict(handle_file(FACE), handle_file(speech), TEXT, True, True, True, api_name="/ablate")
    direct = predictor.predict_combinations(image=str(FACE), audio=str(speech), text=TEXT)
    assert [row["combination"] for row in api["rows"]] == [row.combination for row in direct]
    assert api["labels"] == predictor.labels
    for a, d in zip(api["rows"], direct, strict=True):
        assert a["label"] == d.label
        for label, p in d.probabilities.items():
            assert a["probabilities"][label] == pytest.approx(p, abs=1e-5)


@pytest.mark.slow
def test_bad_input_gives_a_clear_message_and_the_server_keeps_serving(served_app, tmp_path):
    _, client = served_app
    with pytest.raises(Exception, match="nothing usable"):
        client.predict(None, None, "   ", True, True, True, api_name="/predict")
    garbage = tmp_path / "broken.wav"
    garbage.write_bytes(b"RIFF....not really audio")
    result = client.predict(handle_file(FACE), handle_file(garbage), "hello", True, True, True, api_name="/predict")
    assert "audio" in result["missing"] and result["used"] == ["text", "vision"]
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (320, 240), "white").save(blank)
    result = client.predict(handle_file(blank), None, "hello", True, True, True, api_name="/predict")
    assert result["missing"]["vision"] == "no face found in the image"
    assert client.predict(None, None, TEXT, True, True, True, api_name="/predict")["used"] == ["text"]


@pytest.mark.slow
def test_server_settings(served_app):
    demo, client = served_app
    assert demo.config["analytics_enabled"] is False
    assert demo._queue.max_size == server.QUEUE_SIZE
    assert demo.max_file_size == int(server.MAX_UPLOAD.removesuffix("mb")) * 1024 * 1024 and demo.show_error
    assert demo.delete_cache == server.CACHE_CLEANUP == (600, 3600)
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/predict", "/ablate", "/predict_clip"}
