"""Enrolment through the served app: `/predict` and `/predict_clip` with an enrolment clip give the prediction read
relative to the person beside the one without, bad enrolment input gets its reason, and the server keeps serving;
the page's callbacks keep the profile in the session."""

from __future__ import annotations

import numpy as np
import pytest
from bad_inputs import FACE, SPEECH
from gradio_client import handle_file
from PIL import Image

from mculora.preprocess.audio import prepare_audio
from mculora.serving.clip_writer import compose_clip
from mculora.serving.demo import DemoCallbacks

SAD_SPEECH = SPEECH.parent / "sad_speech.wav"
TEXT = "I can't believe it, this is wonderful news!"


@pytest.fixture(scope="module")
def calm_clip(tmp_path_factory):
    """Seven seconds of the example face with the two example voices: a stand-in for a person's calm recording."""
    face = np.asarray(Image.open(FACE).convert("RGB"))
    speech = np.concatenate([prepare_audio(str(path)).samples for path in (SAD_SPEECH, SPEECH)])
    return compose_clip(tmp_path_factory.mktemp("enrol") / "calm.mp4", [(face, speech, speech.size / 16_000)])


@pytest.mark.slow
def test_predict_with_an_enrolment_clip_matches_the_library(served_app, predictor, calm_clip):
    _, client = served_app
    api = client.predict(
        handle_file(FACE), handle_file(SPEECH), TEXT, True, True, True, None, None, handle_file(calm_clip),
        api_name="/predict",
    )  # fmt: skip
    direct = predictor.predict(
        image=str(FACE), audio=str(SPEECH), text=TEXT, profile=predictor.enrol(clip=str(calm_clip))
    )
    assert api["label"] == direct.label
    for label, p in direct.probabilities.items():
        assert api["probabilities"][label] == pytest.approx(p, abs=1e-5)
        assert api["without_profile"][label] == pytest.approx(direct.without_profile[label], abs=1e-5)
    plain = client.predict(handle_file(FACE), handle_file(SPEECH), TEXT, True, True, True, api_name="/predict")
    assert plain["without_profile"] is None
    assert plain["probabilities"] == pytest.approx(api["without_profile"], abs=1e-6)


def _flat(summary: dict) -> dict:
    """method -> combination -> label -> p, as {(method, combination, label): p}."""
    return {(m, c, label): p for m, per in summary.items() for c, row in per.items() for label, p in row.items()}


@pytest.mark.slow
def test_predict_clip_with_an_enrolment_clip(served_app, calm_clip):
    _, client = served_app
    api = client.predict(
        handle_file(calm_clip), None, "", True, True, True, None, handle_file(calm_clip), api_name="/predict_clip"
    )
    assert set(api["without_profile"]) == set(api["methods"])
    plain = client.predict(handle_file(calm_clip), None, "", True, True, True, None, api_name="/predict_clip")
    assert plain["without_profile"] is None
    assert _flat(plain["summary"]) == pytest.approx(_flat(api["without_profile"]))
    assert _flat(api["summary"]) != pytest.approx(_flat(plain["summary"]))  # the face read relative to itself


@pytest.mark.slow
def test_bad_enrolment_gets_its_reason_and_the_server_keeps_serving(served_app, tmp_path):
    _, client = served_app
    silent = compose_clip(tmp_path / "nobody.mp4", [(None, np.zeros(48_000, np.float32), 3.0)])
    with pytest.raises(Exception, match="nothing to enrol from"):
        client.predict(None, None, TEXT, True, True, True, None, None, handle_file(silent), api_name="/predict")
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(b"not a video at all" * 10)
    with pytest.raises(Exception, match="could not read clip"):
        client.predict(None, None, TEXT, True, True, True, None, None, handle_file(garbage), api_name="/predict")
    assert client.predict(None, None, TEXT, True, True, True, api_name="/predict")["used"] == ["text"]


def test_the_page_keeps_the_profile_in_the_session_and_grows_it_when_allowed(predictor, calm_clip):
    callbacks = DemoCallbacks(predictor)
    profile, crop, voice, status, use = callbacks.person.enrol_view(str(calm_clip), None, None)
    assert use is True and crop.shape == (224, 224, 3) and "s of speech" in voice and "Profile" in status
    args = (str(FACE), None, TEXT, None, True, True, True, False, None, None)
    shown, *_, without, status = callbacks.predict_view(*args, profile, True, False)
    assert without is not None and shown != without
    assert profile.counts()["session"] == {}
    *_, without_growing, status = callbacks.predict_view(*args, profile, True, True)
    assert profile.counts()["session"] == {"text": 1, "vision": 1} and "1 of your later inputs" in status
    plain, *_, none, _ = callbacks.predict_view(*args, profile, False, True)
    assert none is None and plain == pytest.approx(without) and profile.counts()["session"]["vision"] == 1
    heatmap, table, *_ = callbacks.ablate_view(
        str(FACE), None, TEXT, None, True, True, True, None, False, profile, True
    )
    methods = {row[0] for row in table["data"]}
    assert methods == {predictor.methods[0], f"{predictor.methods[0]}, your profile"}
    cleared = callbacks.person.forget_profile()
    assert cleared[0] is None and cleared[-1] is False and "No profile" in cleared[3]
