"""A clip window's face vector is pooled so that an expression held for half a second carries the window
(mculora.serving.window_pooling), where the plain mean of its frames let the neutral frames around it outvote it; and
each window records which frames carried it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mculora.modalities import Modality
from mculora.preprocess.clip import FRAME_RATE
from mculora.recipes.sources import EKMAN
from mculora.serving.clip_plots import clip_timeline
from mculora.serving.clip_result import ClipWindow
from mculora.serving.clip_writer import compose_clip
from mculora.serving.window_pooling import NEUTRAL, frame_weights, window_vision

FRAME_S = 1 / FRAME_RATE


def face_vector(label: str, strength: float = 6.0) -> torch.Tensor:
    """A made-up face vector whose last 7 values (the face network's logits) favour ``label``."""
    vector = torch.zeros(380)
    vector[-7 + EKMAN.index(label)] = strength
    return vector


def pooled_window(vectors: list[torch.Tensor], weighted: bool = True) -> tuple[ClipWindow, torch.Tensor]:
    window = ClipWindow(0, 0.0, len(vectors) * FRAME_S, False, 0, False, None, {})
    frames = [(k * FRAME_S, vector, 1) for k, vector in enumerate(vectors)]
    usable = [{}]
    window_vision([window], usable, frames, None, set(), weighted)
    return window, usable[0][Modality.VISION]


def test_neutral_is_the_face_networks_neutral():
    assert EKMAN[NEUTRAL] == "neutral"


def test_a_half_second_peak_carries_the_window_and_is_recorded():
    """2 consecutive angry frames among 6 neutral ones: the window's vector lies nearer the angry face than the plain
    mean (3/4 neutral) does, and its heaviest frames are the two angry ones."""
    neutral, angry = face_vector("neutral"), face_vector("anger")
    frames = [neutral] * 3 + [angry] * 2 + [neutral] * 3
    window, vector = pooled_window(frames)
    assert torch.dist(vector, angry) < torch.dist(torch.stack(frames).mean(dim=0), angry) - 0.5
    assert [time for time, _ in window.frame_weights] == [k * FRAME_S for k in range(8)]
    assert sum(weight for _, weight in window.frame_weights) == pytest.approx(1.0, abs=1e-3)
    heaviest = sorted(window.frame_weights, key=lambda frame: -frame[1])[:2]
    assert sorted(time for time, _ in heaviest) == [0.75, 1.0]


def test_a_single_expressive_frame_or_a_run_of_changing_ones_does_not_carry_the_window():
    """One frame is a blink or a mouth mid-word, not an expression; nor are neighbours that disagree."""
    neutral = face_vector("neutral")
    for frames in (
        [neutral] * 3 + [face_vector("surprise")] + [neutral] * 4,
        [face_vector(label) for label in ("anger", "happiness", "anger", "sadness")],
    ):
        window, vector = pooled_window(frames)
        assert [weight for _, weight in window.frame_weights] == pytest.approx(
            [1 / len(frames)] * len(frames), abs=1e-4
        )
        torch.testing.assert_close(vector, torch.stack(frames).mean(dim=0))


def test_vectors_without_the_face_networks_logits_are_averaged():
    """The hub profile's CLIP embeddings end in no logits: their windows keep the plain mean."""
    vectors = [torch.randn(512) for _ in range(8)]
    window, vector = pooled_window(vectors, weighted=False)
    torch.testing.assert_close(vector, torch.stack(vectors).mean(dim=0))
    assert [weight for _, weight in window.frame_weights] == [0.125] * 8


def test_the_weights_tend_to_the_mean_as_the_temperature_rises():
    frames = torch.stack([face_vector("neutral")] * 6 + [face_vector("fear")] * 2)
    assert frame_weights(frames, 0.1)[-1] > frame_weights(frames, 0.7)[-1] > frame_weights(frames, 100.0)[-1]
    assert frame_weights(frames, 100.0) == pytest.approx(torch.full((8,), 0.125), abs=1e-3)


def first_face(predictor, shared_data, fer_label: str, label: str) -> np.ndarray:
    """The first PublicTest face of ``fer_label`` that the model alone assigns to ``label`` with probability >= 0.6."""
    rows = pd.read_csv(shared_data / "fer2013" / "labels.csv")
    rows = rows[(rows.label == fer_label) & (rows.fer2013_usage == "PublicTest")]
    path = next(
        shared_data / "fer2013" / path
        for path in rows.path.head(60)
        if predictor.predict(image=str(shared_data / "fer2013" / path)).probabilities[label] >= 0.6
    )
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_half_second_smile_in_a_clip_carries_its_windows(predictor, shared_data, tmp_path):
    """A neutral face for 3 s, a smile from 3.0 to 3.5 s (two sampled frames), neutral again: the smile's frames carry
    the two windows that hold it (under the plain mean they were 2 of 8), which are the happier for it; the windows
    without it weigh their frames equally. The weights are in the JSON and CSV exports and on the timeline."""
    neutral = first_face(predictor, shared_data, "neutral", "neutral")
    happy = first_face(predictor, shared_data, "happy", "happiness")
    parts = [(neutral, None, 3.0), (happy, None, 0.5), (neutral, None, 2.5)]
    result = predictor.predict_clip(compose_clip(tmp_path / "smile.mp4", parts, sample_rate=None))
    assert [round(w.start) for w in result.windows] == [0, 1, 2, 3, 4]
    for window in result.windows:
        weights = [weight for _, weight in window.frame_weights]
        happiness = window.row("mcu-lora", "v").probabilities["happiness"]
        if window.start in (2.0, 3.0):
            heaviest = sorted(window.frame_weights, key=lambda frame: -frame[1])[:2]
            assert sorted(time for time, _ in heaviest) == pytest.approx([3.0, 3.25], abs=0.05)
            assert sum(weight for _, weight in heaviest) > 1 / 3 and happiness > 0.1
        else:
            assert weights == pytest.approx([1 / len(weights)] * len(weights), abs=1e-3) and happiness < 0.05
    record = json.loads(result.json())["windows"][2]
    assert [time for time, _ in record["frame_weights"]] == pytest.approx([2 + k * FRAME_S for k in range(8)], abs=0.05)
    assert next(r for r in result.records() if r["window"] == 2)["frame_weights"].startswith("2.00:")
    marks = next(trace for trace in clip_timeline(result).data if trace.name == "face frames")
    assert max(marks.marker.size) > min(marks.marker.size)  # the smile's frames are drawn larger
