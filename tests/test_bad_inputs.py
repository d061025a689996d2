"""The bad-input matrix (`tests/bad_inputs.py`) run two ways: through `Predictor.predict`, and through the served
app's ``/predict`` and ``/ablate`` with gradio_client. Each case must give its expected outcome, and the request after
it must still be answered normally."""

from __future__ import annotations

import json
import re
import tempfile

import httpx
import pytest
from bad_inputs import MATRIX, SPEECH, TEXT, Case, LeftOut, Refused, Used
from gradio_client import handle_file

from mculora.modalities import MODALITIES
from mculora.serving.predictor import NothingToPredict, Predictor

NAMES = [m.value for m in MODALITIES]


@pytest.fixture(scope="module")
def client(served_app):
    return served_app[1]


@pytest.fixture(scope="module")
def normal(predictor) -> dict:
    """The ordinary request sent after every case, and its answer from the Predictor."""
    return predictor.predict(audio=str(SPEECH), text=TEXT).to_dict()


def _kwargs(case: Case, tmp_path_factory) -> dict:
    return case.make(tmp_path_factory.mktemp("case"))


def check(expect, outcome: dict | str) -> None:
    """``outcome``: a prediction's JSON, or the error message when there was none."""
    # Messages name files, never the folders they sit in on the server (the uploads live in the temporary folder).
    assert tempfile.gettempdir() + "/" not in json.dumps(outcome), outcome
    if isinstance(expect, Refused):
        assert isinstance(outcome, str), f"expected an error, got a result: {outcome}"
        assert re.search(expect.message, outcome), outcome
        assert "Traceback" not in outcome and "upstream Gradio app has raised an exception" not in outcome
        return
    assert isinstance(outcome, dict), f"expected a result, got the error: {outcome}"
    if isinstance(expect, Used):
        assert outcome["used"] == list(expect.modalities), outcome["missing"]
        if expect.note:
            assert any(expect.note in note for note in outcome["notes"]), outcome["notes"]
    else:
        assert expect.modality not in outcome["used"]
        assert re.search(expect.reason, outcome["missing"][expect.modality]), outcome["missing"]
    assert sum(outcome["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def _direct(predictor: Predictor, kwargs: dict) -> dict | str:
    try:
        return predictor.predict(**kwargs).to_dict()
    except NothingToPredict as error:
        return str(error)


def _client_args(kwargs: dict) -> list:
    """The Predictor's keyword arguments as the API's positional ones: files uploaded, drops as toggles."""

    def upload(name):
        return handle_file(kwargs[name]) if kwargs.get(name) is not None else None

    toggles = [name not in kwargs.get("drop", ()) for name in NAMES]
    return [upload("image"), upload("audio"), kwargs.get("text"), *toggles, upload("video")]


def _call(client, endpoint: str, args: list) -> dict | str:
    try:
        json.dumps(args, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # lone surrogates: only JSON's \u escapes can carry them, which gradio_client cannot
        return _call_raw(client.src, endpoint, args)
    try:
        return client.predict(*args, api_name=endpoint)
    except Exception as error:  # gradio_client raises AppError (or ValueError) with the server's message
        return str(error)


def _call_raw(url: str, endpoint: str, args: list) -> dict | str:
    """Gradio's REST API by hand: POST the (ASCII-escaped) JSON, then read the event stream's last message."""
    base = f"{url.rstrip('/')}/gradio_api/call{endpoint}"
    # A raw call sends every input: the method (null: the served checkpoint's) and, for /predict, the enrolment clip
    # (null: none) end the values.
    trailing = [None, None] if endpoint == "/predict" else [None]
    body = json.dumps({"data": [*args, *trailing]}).encode()  # ensure_ascii: lone surrogates become \ud800 escapes
    event = httpx.post(base, content=body, headers={"content-type": "application/json"}, timeout=60).json()
    stream = httpx.get(f"{base}/{event['event_id']}", timeout=60).text
    kind, data = re.findall(r"event: (\w+)\ndata: (.*)", stream)[-1]
    payload = json.loads(data)
    return payload[0] if kind == "complete" else str(payload)


@pytest.mark.parametrize("case", MATRIX, ids=[case.name for case in MATRIX])
def test_through_the_predictor(case, predictor, normal, tmp_path_factory):
    check(case.expect, _direct(predictor, _kwargs(case, tmp_path_factory)))
    assert predictor.predict(audio=str(SPEECH), text=TEXT).to_dict()["probabilities"] == normal["probabilities"]


@pytest.mark.slow
@pytest.mark.parametrize("case", MATRIX, ids=[case.name for case in MATRIX])
def test_through_the_app(case, predictor, client, normal, tmp_path_factory):
    kwargs = _kwargs(case, tmp_path_factory)
    args = _client_args(kwargs)
    check(case.expect, _call(client, "/predict", args))
    ablation = _call(client, "/ablate", args)
    if isinstance(case.expect, Refused):
        assert isinstance(ablation, str) and re.search(case.expect.message, ablation), ablation
    else:
        assert isinstance(ablation, dict), ablation
        used = set(ablation["rows"][0]["combination"])  # the first row is every usable modality together
        assert len(ablation["rows"]) == 2 ** len(used) - 1
        if isinstance(case.expect, LeftOut):
            assert case.expect.modality[0] not in used
    answer = _call(client, "/predict", [None, handle_file(str(SPEECH)), TEXT, True, True, True, None])
    assert isinstance(answer, dict), answer
    assert answer["probabilities"] == pytest.approx(normal["probabilities"], abs=1e-5)


# -- wrong argument types: each way has its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"drop": ["smell"]}, ValueError, "unknown modality 'smell'"),
        ({"audio": b"RIFF"}, TypeError, "a bare audio array needs sample_rate="),
        ({"audio": [0.1, 0.2], "sample_rate": 16_000}, TypeError, "unexpected keyword argument 'sample_rate'"),
    ],
)
def test_wrong_argument_types_to_the_predictor_are_errors(predictor, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        predictor.predict(text=TEXT, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "modality", "reason"),
    [
        ({"text": 123}, "text", "text must be a string, not int"),
        ({"image": 42}, "vision", "could not read image of type int"),
        ({"image": "/no/such/face.png"}, "vision", "no such file"),
        ({"audio": (16_000, "loud")}, "audio", "not numeric"),
    ],
)
def test_unusable_values_of_the_wrong_type_are_left_out(predictor, kwargs, modality, reason):
    result = predictor.predict(**{"text": TEXT, "audio": str(SPEECH), **kwargs})
    assert reason in result.missing[modality]


SERVER_FILE = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expect", "raw"),
    [
        ([None, None, TEXT, "yes", True, True, None], Refused("use_audio must be true or false, not 'yes'"), False),
        ([None, None, TEXT, True, 0, True, None], Refused("use_text must be true or false, not '0'"), False),
        ([None, None, 12345, True, True, True, None], Used(("text",)), False),  # the text box reads it as "12345"
        (["not a file", None, TEXT, True, True, True, None], Refused("validation error for ImageData"), False),
        ([None, 3.5, TEXT, True, True, True, None], Refused("validation error for FileData"), False),
        # A path on the server, sent as raw JSON (gradio_client would upload the client's own file of that name).
        (
            [SERVER_FILE, None, TEXT, True, True, True, None],
            Refused("Cannot move /etc/passwd .* not uploaded by a user"),
            True,
        ),
    ],
    ids=["toggle string", "toggle number", "text number", "image string", "audio number", "server file path"],
)
def test_wrong_argument_types_to_the_api(client, normal, args, expect, raw):
    check(expect, _call_raw(client.src, "/predict", args) if raw else _call(client, "/predict", args))
    again = _call(client, "/predict", [None, handle_file(str(SPEECH)), TEXT, True, True, True, None])
    assert again["probabilities"] == pytest.approx(normal["probabilities"], abs=1e-5)
