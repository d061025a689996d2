"""Simulated sessions: a voice moved by its speaker's other recordings takes the speaker's offset out, never uses the
scored recording itself, and reaches the fusion's training pairs in the share asked for."""

import numpy as np
import pytest

from mculora.modalities import Modality
from mculora.recipes.pairing import Pool, paired_batch
from mculora.recipes.speaker_sessions import SpeakerSessions


def two_speakers(rows: int = 30, dim: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same recordings (an expression per row) said by two speakers with very different offsets."""
    expression = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)
    offsets = np.array([[5.0] * dim, [-3.0] * dim], np.float32)
    vectors = np.concatenate([expression + offsets[0], expression + offsets[1]])
    return vectors, np.array(["s1"] * rows + ["s2"] * rows), expression


def test_a_session_of_all_other_recordings_takes_the_speakers_offset_out():
    vectors, speakers, expression = two_speakers()
    population = np.full(4, 0.5, np.float32)
    sessions = SpeakerSessions(vectors, speakers, population, sizes=(1000, 1000))  # every other recording
    moved = sessions.all_moved(seed=0)
    rows = len(expression)
    np.testing.assert_allclose(moved[:rows], moved[rows:], atol=1e-5)  # the two speakers now read alike
    others = (expression.sum(0) - expression) / (rows - 1)
    np.testing.assert_allclose(moved[:rows], expression - others + population, atol=1e-5)
    assert np.abs(vectors[:rows] - vectors[rows:]).min() > 7  # they did not before


def test_the_scored_recording_is_never_in_its_own_session():
    vectors = np.array([[1.0, 0.0], [3.0, 2.0], [10.0, 10.0]], np.float32)
    sessions = SpeakerSessions(vectors, np.array(["a", "a", "b"]), np.zeros(2, np.float32))
    moved = sessions.moved(np.array([0, 1, 2]), np.random.default_rng(0))
    np.testing.assert_allclose(moved[0], vectors[0] - vectors[1])
    np.testing.assert_allclose(moved[1], vectors[1] - vectors[0])
    np.testing.assert_allclose(moved[2], vectors[2])  # a speaker with one recording has no session: unmoved


def test_sessions_are_drawn_within_their_sizes_and_are_seeded():
    vectors, speakers, _ = two_speakers(rows=60)
    sessions = SpeakerSessions(vectors, speakers, np.zeros(4, np.float32), sizes=(16, 16))
    every = SpeakerSessions(vectors, speakers, np.zeros(4, np.float32), sizes=(1000, 1000)).all_moved(0)
    drawn = sessions.all_moved(seed=3)
    np.testing.assert_array_equal(drawn, sessions.all_moved(seed=3))
    assert not np.allclose(drawn, sessions.all_moved(seed=4))
    assert not np.allclose(drawn, every)  # 16 of 59 others, not all of them


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_training_pairs_carry_moved_voices_in_the_share_asked_for(share):
    rng = np.random.default_rng(0)
    vectors, speakers, _ = two_speakers(rows=200)
    labels = rng.integers(0, 7, len(vectors))
    ids = [f"clip{i}" for i in range(len(vectors))]
    pools = {
        (m, "train"): Pool(vectors.copy(), labels, np.array(["x"] * len(ids)), ids)
        for m in (Modality.TEXT, Modality.AUDIO, Modality.VISION)
    }
    population = np.zeros(4, np.float32)
    sessions = SpeakerSessions.of(vectors, ids, dict(zip(ids, speakers, strict=True)), population)
    batch = paired_batch(pools, "train", rng.integers(0, 7, 4000), rng, sessions, share)
    voices = batch.features[Modality.AUDIO][:, 0].numpy()
    as_recorded = np.isin(voices.round(4), vectors.round(4)).all(1)
    assert abs((~as_recorded).mean() - share) < 0.03
    # Moved voices lose their speaker's offset (+5 or -3 per feature); text and faces are never moved.
    assert np.abs(voices[~as_recorded].mean(1)).max(initial=0) < 2.5
    assert np.isin(batch.features[Modality.TEXT][:, 0].numpy().round(4), vectors.round(4)).all()
