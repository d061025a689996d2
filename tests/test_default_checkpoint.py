"""The shipped default checkpoint: it loads offline with its encoders, and ranks clear, unseen examples from the
real test splits right (several of each, with a tolerance; never the data it was trained or selected on)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mculora.checkpoint import read_checkpoint_config
from mculora.encoders import build_encoders, check_encoders
from mculora.modalities import Modality
from mculora.recipes.sources import EKMAN, all_items
from mculora.serving.predictor import NothingToPredict
from mculora.training.evaluate import CONDITIONS
from mculora.training.metrics import COLLAPSE_SHARE, balanced_draw, collapse_check

SAD_SENTENCES = [
    "My dog died this morning and I can't stop crying.",
    "I feel so lonely and empty since she left.",
    "I lost my job today and I don't know what to do. I'm heartbroken.",
    "Nobody came to my birthday. I feel so sad.",
    "I miss my grandmother so much, it hurts every day.",
    "Everything is falling apart and I feel hopeless.",
]


def _rank(predictor, label: str, **inputs) -> tuple[bool, float]:
    p = predictor.predict(**inputs)
    return p.label == label, p.probabilities[label]


def test_config_matches_the_offline_encoders(demo_checkpoint):
    config = read_checkpoint_config(demo_checkpoint)
    assert config.label_names == list(EKMAN) and config.encoders["profile"] == "offline"
    check_encoders(config.encoders, build_encoders("offline", weights=demo_checkpoint))


def test_obviously_sad_sentences_are_sad(predictor):
    hits = [_rank(predictor, "sadness", text=s) for s in SAD_SENTENCES]
    assert sum(top for top, _ in hits) >= 5, hits


def test_happy_test_faces_are_happy(predictor, shared_data):
    faces = pd.read_csv(shared_data / "fer2013" / "labels.csv")
    paths = faces[(faces.label == "happy") & (faces.fer2013_usage == "PublicTest")].path.head(12)
    hits = [_rank(predictor, "happiness", image=str(shared_data / "fer2013" / p)) for p in paths]
    assert sum(top for top, _ in hits) >= 8, hits


def test_angry_clips_of_unseen_actors_are_angry(predictor, shared_data):
    clips = pd.read_csv(shared_data / "ravdess_speech" / "labels.csv")
    unseen = clips[(clips.emotion == "angry") & (clips.intensity == 2) & (clips.actor >= 19)].path
    hits = [_rank(predictor, "anger", audio=str(shared_data / "ravdess_speech" / p)) for p in unseen]
    assert len(hits) == 16  # 4 unseen actors x 2 sentences x 2 repetitions, strong intensity
    assert sum(top for top, _ in hits) >= 11, hits
    # And anger is, on average, the most likely label for them.
    probabilities = [predictor.predict(audio=str(shared_data / "ravdess_speech" / p)).probabilities for p in unseen]
    means = {label: np.mean([p[label] for p in probabilities]) for label in EKMAN}
    assert max(means, key=means.get) == "anger", means


def test_probabilities_are_calibrated_per_combination(predictor, demo_checkpoint, shared_data):
    report = json.loads((demo_checkpoint / "metrics.json").read_text())["calibration"]
    assert predictor.config.temperatures == {c: r["temperature"] for c, r in report.items()}
    assert set(report) == set(CONDITIONS)
    # The model card's table. Learned from cross-fitted encoder outputs, the raw model is close to honest already
    # (its worst raw ECE is 0.073, speech alone; before cross-fitting it was 0.248), so the temperatures, fitted on the
    # validation pairs, have little left to fix: they never make a test condition clearly worse, and every condition
    # ends at ECE <= 0.06 (the worst is speech alone, 0.055).
    for condition, r in report.items():
        assert r["ece_after"] <= r["ece_before"] + 0.01 and r["nll_after"] <= r["nll_before"] + 0.005, condition
    assert max(r["ece_before"] for r in report.values()) <= 0.08
    assert max(r["ece_after"] for r in report.values()) <= 0.06

    # On a fixed input, the shown probabilities are the softmax of the logits over the combination's temperature:
    # less peaked than the raw softmax where T > 1, the same label, and they still sum to 1.
    clip = shared_data / "ravdess_speech" / "audio" / "Actor_19" / "03-01-05-02-01-01-19.flac"
    prediction = predictor.predict(audio=str(clip))
    logits = torch.tensor(list(prediction.contributions.logits.values()))
    raw, shown = logits.softmax(-1), torch.tensor(list(prediction.probabilities.values()))
    assert predictor.config.temperatures["a"] > 1.0
    assert torch.allclose(shown, (logits / predictor.config.temperatures["a"]).softmax(-1), atol=1e-5)
    assert shown.max() < raw.max() and int(shown.argmax()) == int(raw.argmax())
    assert float(shown.sum()) == pytest.approx(1.0)


def test_no_modality_collapses_onto_one_class(predictor, shared_data):
    """The collapse check on the shipped model, through the whole run-time path: on a class-balanced draw of each
    modality's test items (unseen speakers, faces, texts), no class takes more than 35 % of the predictions."""
    tests = [item for item in all_items(shared_data) if item.split == "test"]
    argument = {Modality.TEXT: "text", Modality.AUDIO: "audio", Modality.VISION: "image"}
    for modality, name in argument.items():
        items = [item for item in tests if item.modality is modality]
        labels = np.array([EKMAN.index(item.label) for item in items])
        chosen = [items[i] for i in balanced_draw(labels, seed=0, most=32)]  # 32: the rarest class in audio
        scores, kept = [], []
        for item in chosen:
            value = item.text if modality is Modality.TEXT else str(item.path)
            try:
                probabilities = predictor.predict(**{name: value}).probabilities
            except NothingToPredict:  # the 1 % of faces the mesh does not find
                continue
            scores.append([probabilities[label] for label in EKMAN])
            kept.append(EKMAN.index(item.label))
        check = collapse_check(np.array(kept), np.array(scores), EKMAN)
        assert check["balanced_items"] >= 7 * 31, (modality, check)
        assert check["largest_share"] <= COLLAPSE_SHARE, (modality, check["prediction_shares"])
