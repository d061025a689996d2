"""Person profiles: the statistics, their files, the moving rule, enrolment with its bad inputs, and predictions read
relative to a person through the Predictor (the shipped checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from bad_inputs import FACE, SPEECH
from PIL import Image

from mculora.modalities import Modality
from mculora.person import PersonProfile, PersonReference, ProfileError, RunningStatistics
from mculora.preprocess.audio import prepare_audio
from mculora.serving.enrolment import EnrolmentError

SAD_SPEECH = SPEECH.parent / "sad_speech.wav"


def _profile_with_data(rng: np.random.Generator) -> PersonProfile:
    profile = PersonProfile(checkpoint="abc")
    profile.add_calm(Modality.AUDIO, rng.normal(size=(5, 4)))
    profile.add_calm(Modality.VISION, rng.normal(size=(3, 2)))
    profile.update({"audio": rng.normal(size=4)})
    profile.update({Modality.AUDIO: rng.normal(size=4)})
    return profile


def test_running_statistics_are_the_mean_and_spread_of_what_was_added():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(40, 6))
    stats = RunningStatistics()
    stats.add(data[:7])
    for row in data[7:]:
        stats.add(row)
    assert stats.count == 40
    np.testing.assert_allclose(stats.mean, data.mean(0))
    np.testing.assert_allclose(stats.std, data.std(0, ddof=1))
    with pytest.raises(ProfileError, match="does not fit"):
        stats.add(np.zeros(5))


@pytest.mark.parametrize("suffix", [".json", ".safetensors"])
def test_a_profile_saves_and_loads_without_pickle(tmp_path, suffix):
    profile = _profile_with_data(np.random.default_rng(1))
    path = profile.save(tmp_path / f"me{suffix}")
    loaded = PersonProfile.load(path)
    assert loaded.checkpoint == "abc" and loaded.modalities == ["audio", "vision"]
    assert loaded.counts() == {"calm": {"audio": 5, "vision": 3}, "session": {"audio": 2}} == profile.counts()
    for part in ("calm", "session"):
        for modality, stats in getattr(profile, part).items():
            np.testing.assert_allclose(getattr(loaded, part)[modality].mean, stats.mean)
            np.testing.assert_allclose(getattr(loaded, part)[modality].std, stats.std)
    assert b"pickle" not in path.read_bytes() and b"__reduce__" not in path.read_bytes()


def test_a_broken_or_foreign_profile_file_gets_a_reason(tmp_path):
    with pytest.raises(ProfileError, match="as .json or .safetensors"):
        PersonProfile(checkpoint="abc").save(tmp_path / "me.pkl")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ProfileError, match="not an mculora person profile"):
        PersonProfile.load(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text('{"format": "mculora-person-pro')
    with pytest.raises(ProfileError, match="could not read the profile"):
        PersonProfile.load(tmp_path / "cut.json")
    body = json.loads(_profile_with_data(np.random.default_rng(2)).save(tmp_path / "me.json").read_text())
    del body["arrays"]["calm.audio.mean"]
    (tmp_path / "lacking.json").write_text(json.dumps(body))
    with pytest.raises(ProfileError, match="not a valid person profile"):
        PersonProfile.load(tmp_path / "lacking.json")
    (tmp_path / "noise.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ProfileError, match="could not read the profile"):
        PersonProfile.load(tmp_path / "noise.safetensors")


def test_the_rule_moves_by_the_calm_enrolment_until_the_session_is_long_enough():
    reference = PersonReference(
        calm_mean={Modality.VISION: np.array([1.0, 1.0])},
        population_mean={Modality.VISION: np.array([0.0, 0.0])},
        calm_weight={Modality.VISION: 0.5},
        session_min=3,
    )
    profile = PersonProfile(checkpoint="x")
    vectors = {Modality.VISION: torch.tensor([5.0, 5.0]), Modality.TEXT: torch.tensor([7.0])}
    assert reference.adapt(vectors, profile)[Modality.VISION].tolist() == [5.0, 5.0]  # nothing known yet
    profile.add_calm(Modality.VISION, np.array([[3.0, 5.0]]))
    moved = reference.adapt(vectors, profile)
    assert moved[Modality.VISION].tolist() == [4.0, 3.0]  # half of (1 - 3, 1 - 5)
    assert moved[Modality.TEXT].tolist() == [7.0]  # text is never moved
    for value in (2.0, 4.0):
        profile.update({Modality.VISION: [value, value]})
    assert reference.adapt(vectors, profile)[Modality.VISION].tolist() == [4.0, 3.0]  # 2 < session_min
    profile.update({Modality.VISION: [6.0, 6.0]})
    assert reference.adapt(vectors, profile)[Modality.VISION].tolist() == [1.0, 1.0]  # 5 - mean 4 + 0


# -- through the Predictor (the shipped checkpoint) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def profile(predictor):
    return predictor.enrol(image=str(FACE), audio=[str(SAD_SPEECH), str(SPEECH)])


def test_enrolment_reads_face_and_voice_and_says_what_it_read(predictor, profile):
    assert profile.checkpoint == predictor.fingerprint and profile.modalities == ["audio", "vision"]
    counts = profile.counts()["calm"]
    assert counts["vision"] == 1 and counts["audio"] >= 2  # each file gives a segment per 3 s of speech
    assert profile.capture.face_crop.shape == (224, 224, 3) and profile.capture.speech_s > 4
    assert len(profile.capture.segment_levels_dbfs) == counts["audio"] and profile.notes == []


def test_a_profile_moves_the_prediction_and_the_prediction_without_it_is_todays(predictor, profile):
    inputs = {"image": str(FACE), "audio": str(SPEECH), "text": "Hello there."}
    today = predictor.predict(**inputs)
    assert today.without_profile is None
    personal = predictor.predict(**inputs, profile=profile)
    assert personal.without_profile == pytest.approx(today.probabilities, abs=1e-6)
    # The enrolled face is this very (smiling) face: relative to it, the smile is the person's rest.
    assert today.label == "happiness" and personal.probabilities["happiness"] < today.probabilities["happiness"] - 0.3
    assert personal.features.vectors[Modality.VISION].tolist() == today.features.vectors[Modality.VISION].tolist()
    rows = predictor.predict_combinations(**inputs, profile=profile)
    plain = predictor.predict_combinations(**inputs)
    assert [r.combination for r in rows] == [r.combination for r in plain]
    assert rows[0].probabilities == pytest.approx(personal.probabilities, abs=1e-5)
    text_alone = next(r for r in rows if r.combination == "t")
    assert text_alone.probabilities == pytest.approx(next(r for r in plain if r.combination == "t").probabilities)


def test_updates_grow_the_session_from_the_raw_vectors(predictor, profile):
    grown = PersonProfile(checkpoint=profile.checkpoint, calm=dict(profile.calm))
    prediction = predictor.predict(image=str(FACE), profile=grown)
    grown.update(prediction)
    assert grown.counts()["session"] == {"vision": 1}
    np.testing.assert_allclose(grown.session[Modality.VISION].mean, prediction.features.vectors[Modality.VISION])


def test_a_profile_of_another_checkpoint_is_refused(predictor, profile, tmp_path):
    foreign = PersonProfile.load(profile.save(tmp_path / "me.json"))
    foreign.checkpoint = "0123456789abcdef"
    for call in (
        lambda: predictor.predict(text="Hello.", profile=foreign),
        lambda: predictor.predict_combinations(text="Hello.", profile=foreign),
        lambda: predictor.predict_clip(tmp_path / "never-read.mp4", profile=foreign),
    ):
        with pytest.raises(ProfileError, match="made with another checkpoint"):
            call()


def _two_faces(tmp_path):
    face = np.asarray(Image.open(FACE).convert("RGB"))
    Image.fromarray(np.hstack([face, face])).save(tmp_path / "two.png")
    return str(tmp_path / "two.png")


def _wav(tmp_path, name: str, samples: np.ndarray) -> str:
    sf.write(tmp_path / name, samples, 16_000)
    return str(tmp_path / name)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("nothing", "give a short calm recording"),
        ("no face", "no face found"),
        ("silence", "silent"),
        ("too short", "too short"),
        ("several people", "several faces"),
        ("missing clip", "no such file"),
    ],
)
def test_bad_enrolment_input_gets_a_reason(predictor, tmp_path, case, expected):
    speech = prepare_audio(str(SPEECH)).samples
    inputs = {
        "nothing": {},
        "no face": {"image": np.full((240, 320, 3), 128, np.uint8)},
        "silence": {"audio": _wav(tmp_path, "quiet.wav", np.zeros(5 * 16_000, np.float32))},
        "too short": {"audio": _wav(tmp_path, "short.wav", speech[: int(1.5 * 16_000)])},
        "several people": {"image": _two_faces(tmp_path)},
        "missing clip": {"clip": str(tmp_path / "missing.mp4")},
    }[case]
    with pytest.raises(EnrolmentError, match=expected):
        predictor.enrol(**inputs)


def test_an_enrolment_keeps_what_is_usable_and_notes_the_rest(predictor, tmp_path):
    profile = predictor.enrol(image=str(FACE), audio=_wav(tmp_path, "quiet.wav", np.zeros(16_000, np.float32)))
    assert profile.modalities == ["vision"] and "voice not enrolled" in profile.notes[0]
    assert "silent" in profile.notes[0]


def test_enrolment_from_a_clip_with_face_and_voice(predictor, tmp_path):
    from mculora.serving.clip_writer import compose_clip

    face = np.asarray(Image.open(FACE).convert("RGB"))
    speech = np.concatenate([prepare_audio(str(path)).samples for path in (SAD_SPEECH, SPEECH)])
    clip = compose_clip(tmp_path / "calm.mp4", [(face, speech, speech.size / 16_000)])
    profile = predictor.enrol(clip=str(clip))
    counts = profile.counts()["calm"]
    assert counts["vision"] >= 10 and counts["audio"] >= 2, counts  # 2 frames a second of a 7 s clip
    result = predictor.predict_clip(clip, profile=profile)
    plain = predictor.predict_clip(clip)
    assert (
        result.windows[0].row(result.methods[0], "v").probabilities
        != plain.windows[0].row(plain.methods[0], "v").probabilities
    )


@pytest.mark.slow
def test_the_clip_command_reads_relative_to_an_enrolment_or_a_saved_profile(predictor, demo_checkpoint, tmp_path):
    import subprocess
    import sys

    from mculora.serving.clip_writer import compose_clip

    face = np.asarray(Image.open(FACE).convert("RGB"))
    speech = np.concatenate([prepare_audio(str(path)).samples for path in (SAD_SPEECH, SPEECH)])
    clip = compose_clip(tmp_path / "calm.mp4", [(face, speech, speech.size / 16_000)])

    def command(*options: str) -> subprocess.CompletedProcess:
        args = [sys.executable, "-m", "mculora.cli", "clip", str(clip), "--out", str(tmp_path / "out"), "--overwrite"]
        return subprocess.run(
            [*args, "--checkpoint", str(demo_checkpoint), *options], capture_output=True, text=True, timeout=300
        )

    enrolled = command("--enrol", str(clip))
    assert enrolled.returncode == 0, enrolled.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "calm.mp4.json").read_text())
    assert record["without_profile"] is not None and record["summary"] != record["without_profile"]
    saved = predictor.enrol(clip=str(clip))
    saved.save(tmp_path / "me.json")
    from_file = command("--profile", str(tmp_path / "me.json"))
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    again = json.loads((tmp_path / "out" / "calm.mp4.json").read_text())["summary"]
    for method, per_combination in record["summary"].items():
        for combination, probabilities in per_combination.items():
            assert again[method][combination] == pytest.approx(probabilities, abs=1e-5)
    saved.checkpoint = "0123456789abcdef"
    saved.save(tmp_path / "theirs.json")
    refused = command("--profile", str(tmp_path / "theirs.json"))
    assert refused.returncode != 0 and "made with another checkpoint" in refused.stderr
