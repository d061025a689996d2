"""The shipped default checkpoint: it loads offline with its encoders, and ranks clear, unseen examples from the
real test splits right (several of each, with a tolerance; never the data it was trained or selected on)."""

import numpy as np
import pandas as pd
import pytest

from mculora.checkpoint import read_checkpoint_config
from mculora.encoders import build_encoders, check_encoders
from mculora.predictor import Predictor
from mculora.recipes.sources import EKMAN

SAD_SENTENCES = [
    "My dog died this morning and I can't stop crying.",
    "I feel so lonely and empty since she left.",
    "I lost my job today and I don't know what to do. I'm heartbroken.",
    "Nobody came to my birthday. I feel so sad.",
    "I miss my grandmother so much, it hurts every day.",
    "Everything is falling apart and I feel hopeless.",
]


@pytest.fixture(scope="module")
def predictor(demo_checkpoint):
    return Predictor.from_pretrained(demo_checkpoint, device="cpu")


def _rank(predictor, label: str, **inputs) -> tuple[bool, float]:
    p = predictor.predict(**inputs)
    return p.label == label, p.probabilities[label]


def test_config_matches_the_offline_encoders(demo_checkpoint):
    config = read_checkpoint_config(demo_checkpoint)
    assert config.label_names == list(EKMAN) and config.encoders["profile"] == "offline"
    check_encoders(config.encoders, build_encoders("offline"))


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
