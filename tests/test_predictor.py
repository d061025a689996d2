"""The Predictor end to end on real media, with an UNTRAINED checkpoint (random weights): these tests check the
plumbing (routing, missing-modality reasons, batching, contributions), not the quality of the predictions."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from mculora.checkpoint import CheckpointConfig, CheckpointError, save_checkpoint
from mculora.encoders import (
    EncoderMismatch,
    EncoderUnavailable,
    build_encoders,
    copy_encoder_weights,
    describe_encoders,
)
from mculora.model import MCULoRA, MCULoRAConfig
from mculora.preprocess.audio import prepare_audio
from mculora.serving.predictor import NothingToPredict, Predictor

EXAMPLE_SPEECH = Path(__file__).resolve().parents[1] / "assets" / "examples" / "happy_speech.wav"

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


def _checkpoint(directory, encoders, weights, task="classification", text_dim=None):
    """An untrained checkpoint for ``encoders``, carrying the trained encoder weights found in ``weights``."""
    dims = {m.value: e.dim for m, e in encoders.items()}
    record = describe_encoders("offline", encoders)
    if text_dim is not None:
        record["text"] = {"name": record["text"]["name"], "dim": text_dim}
        dims["text"] = text_dim
    torch.manual_seed(0)
    outputs = len(LABELS) if task == "classification" else 1
    model = MCULoRA(MCULoRAConfig(feature_dims=dims, num_outputs=outputs, hidden=32, depth=1))
    for name, p in model.named_parameters():
        if ".lora_B." in name:
            torch.nn.init.normal_(p, std=0.1)
    labels = LABELS if task == "classification" else ["sentiment"]
    config = CheckpointConfig(model=model.config, task=task, label_names=labels, method="mcu-lora", encoders=record)
    save_checkpoint(directory, model, config)
    copy_encoder_weights(weights, directory)
    return directory


@pytest.fixture(scope="module")
def predictor(tmp_path_factory, demo_checkpoint):
    encoders = build_encoders("offline", weights=demo_checkpoint)
    path = _checkpoint(tmp_path_factory.mktemp("ckpt") / "untrained", encoders, demo_checkpoint)
    return Predictor.from_pretrained(path, device="cpu")


@pytest.fixture(scope="module")
def face():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def voice():
    """Two seconds of the example recording of speech at 16 kHz (a synthetic voice is no voice to the detector)."""
    return 16000, prepare_audio(str(EXAMPLE_SPEECH)).samples[: 2 * 16000]


def test_missing_modalities_and_their_reasons(predictor, face, voice):
    text_only = predictor.predict(text="I am thrilled!")
    assert text_only.used == ["text"] and text_only.contributions.combination == "t"
    assert text_only.missing == {"audio": "not given", "vision": "not given"}

    dropped = predictor.predict(image=face, audio=voice, text="I am thrilled!", drop=["text"])
    assert dropped.used == ["audio", "vision"] and dropped.missing == {"text": "dropped by the user"}

    blank = np.full((240, 320, 3), 255, dtype=np.uint8)
    silent = (16000, np.zeros(16000, dtype=np.int16))
    unusable = predictor.predict(image=blank, audio=silent, text="hello there")
    assert unusable.used == ["text"]
    assert "no face" in unusable.missing["vision"] and "silent" in unusable.missing["audio"]


def test_nothing_usable_raises_a_clear_error(predictor):
    with pytest.raises(NothingToPredict, match="audio: not given; text: the text is empty; vision: not given"):
        predictor.predict(text="   ")
    with pytest.raises(NothingToPredict, match="dropped by the user"):
        predictor.predict(text="fine", drop=["t"])


def test_prediction_contents(predictor, face, voice):
    p = predictor.predict(image=face, audio=voice, text="What a wonderful surprise!")
    assert p.used == ["audio", "text", "vision"] and p.contributions.combination == "atv"
    assert set(p.probabilities) == set(LABELS) and sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.label == max(p.probabilities, key=p.probabilities.get)
    c = p.contributions
    for label in LABELS:
        assert c.base[label] + c.shared[label] + c.adapter[label] == pytest.approx(c.logits[label], abs=1e-4)
    logits = torch.tensor([c.logits[label] for label in LABELS])
    assert torch.allclose(logits.softmax(0), torch.tensor([p.probabilities[label] for label in LABELS]), atol=1e-5)
    # The shipped model's combination adapters change every present modality's representation.
    assert all(c.combination_specific[m] > 0.01 for m in ("audio", "text", "vision"))
    # Every stage did work, one after the other within the request's wall time.
    stages = ("audio_preprocess", "audio_encode", "text_encode", "vision_detect", "vision_encode", "model")
    assert all(p.timings_ms[stage] > 0 for stage in stages), p.timings_ms
    assert sum(p.timings_ms[stage] for stage in stages) <= p.timings_ms["total"]
    assert p.features.face is not None and p.features.face.landmarks.shape == (478, 3)
    summary = json.loads(json.dumps(p.to_dict()))
    assert summary["label"] == p.label and summary["probabilities"] == p.probabilities and summary["used"] == p.used
    assert summary["contributions"]["combination"] == "atv" and summary["without_profile"] is None


def test_predict_combinations_equals_individual_predictions(predictor, face, voice):
    inputs = {"image": face, "audio": voice, "text": "I can't believe you did that."}
    table = predictor.predict_combinations(**inputs)
    assert [row.combination for row in table] == ["atv", "at", "av", "tv", "a", "t", "v"]
    letters = {"a": "audio", "t": "text", "v": "vision"}
    for row in table:
        drop = [name for letter, name in letters.items() if letter not in row.combination]
        single = predictor.predict(**inputs, drop=drop)
        assert single.label == row.label
        for label in LABELS:
            assert single.probabilities[label] == pytest.approx(row.probabilities[label], abs=1e-5)
    # Only the usable modalities are combined.
    assert [row.combination for row in predictor.predict_combinations(text="hi", image=face)] == ["tv", "t", "v"]


def test_history_is_the_attention_context(predictor, face, voice):
    first = predictor.predict(text="You broke it again.", audio=voice)
    second = predictor.predict(text="I am fine.", image=face)
    alone = predictor.predict(text="Really fine.", image=face)
    in_context = predictor.predict(text="Really fine.", image=face, history=[first.features, second.features])
    assert in_context.used == alone.used
    assert not np.allclose(list(alone.probabilities.values()), list(in_context.probabilities.values()))


def test_video_frames_are_averaged(predictor, face, tmp_path):
    path = tmp_path / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (256, 256))
    for i in range(20):
        frame = cv2.resize(face, (256, 256))
        frame = np.roll(frame, i, axis=1) if i % 2 else frame
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    p = predictor.predict(video=str(path), text="hello")
    assert p.used == ["text", "vision"]
    # The vision vector is the mean of the vectors of every sampled frame with a face, not of one frame.
    from mculora.modalities import Modality
    from mculora.preprocess.vision import read_video_frames

    faces = [f for f in predictor.featurizer.face_finder.find_many(read_video_frames(path)) if f is not None]
    vectors = predictor.featurizer.encoders[Modality.VISION].encode(faces)
    assert len(faces) == 4  # 2 s at 2 frames/s
    assert torch.allclose(p.features.vectors[Modality.VISION], vectors.mean(dim=0), atol=1e-5)
    assert not torch.allclose(p.features.vectors[Modality.VISION], vectors[1], atol=1e-3)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    q = predictor.predict(video=str(broken), text="hello")
    assert "vision" in q.missing and q.used == ["text"]


def test_checkpoint_that_does_not_fit_the_encoders(tmp_path, demo_checkpoint):
    encoders = build_encoders("offline", weights=demo_checkpoint)
    with pytest.raises(EncoderMismatch, match="different encoders"):
        Predictor.from_pretrained(_checkpoint(tmp_path / "a", encoders, demo_checkpoint, text_dim=768), device="cpu")
    with pytest.raises(CheckpointError, match="classification"):
        Predictor.from_pretrained(
            _checkpoint(tmp_path / "b", encoders, demo_checkpoint, task="regression"), device="cpu"
        )
    # A checkpoint without its face network cannot encode faces: it says which file is missing.
    path = _checkpoint(tmp_path / "c", encoders, demo_checkpoint)
    (path / "face_net.safetensors").unlink()
    with pytest.raises(EncoderUnavailable, match="face_net.safetensors"):
        Predictor.from_pretrained(path, device="cpu")
