"""Usable speech is speech (mculora.preprocess.voice_activity): a tone, music, noise and silence get "no speech" with
the reason through the library, the predictor and a clip's windows; real speech from the shared corpora is found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import MIN_SECONDS, TARGET_SAMPLE_RATE, prepare_audio
from mculora.preprocess.voice_activity import FRAME, require_speech, speech_frames, speech_seconds
from mculora.serving.clip_writer import compose_clip
from mculora.serving.predictor import NothingToPredict

RATE = TARGET_SAMPLE_RATE
SPEECH = Path(__file__).resolve().parents[1] / "assets" / "examples" / "happy_speech.wav"


def _sounds() -> dict[str, np.ndarray]:
    """Three seconds of each sound that is loud but no voice."""
    t = np.arange(3 * RATE) / RATE
    rng = np.random.default_rng(0)
    notes = (262, 294, 330, 349, 392, 440, 494, 523)
    melody = np.zeros_like(t)
    for k in range(12):  # a scale played on a harmonic-rich instrument, a note every 250 ms
        part = (t >= k / 4) & (t < (k + 1) / 4)
        melody[part] = sum(np.sin(2 * np.pi * notes[k % 8] * h * t[part]) / h for h in range(1, 6))
    brown = np.cumsum(rng.normal(0, 1, t.size))  # a fan's rumble: integrated noise, its drift removed
    brown -= np.convolve(brown, np.ones(800) / 800, "same")
    sounds = {
        "tone 300 Hz": 0.3 * np.sin(2 * np.pi * 300 * t),
        "dial tone": 0.2 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t)),
        "melody": 0.2 * melody,
        "white noise": rng.normal(0, 0.1, t.size),
        "fan": 0.3 * brown / np.abs(brown).max(),
        "near silence": rng.normal(0, 1e-3, t.size),
    }
    return {name: x.astype(np.float32) for name, x in sounds.items()}


SOUNDS = _sounds()


@pytest.mark.parametrize("name", SOUNDS)
def test_loud_sounds_that_are_no_voice_are_refused_with_the_reason(name):
    samples = prepare_audio((RATE, SOUNDS[name])).samples  # loud enough for the loudness rule
    with pytest.raises(UnusableInput, match="no speech in the audio.*voice activity detector"):
        require_speech(samples)


def test_speech_is_found_and_its_frames_are_where_the_voice_is():
    speech = prepare_audio(str(SPEECH)).samples
    require_speech(speech)
    padded = np.concatenate([np.zeros(2 * RATE, np.float32), speech, np.zeros(2 * RATE, np.float32)])
    frames = speech_frames(padded)
    marked = np.flatnonzero(frames) * FRAME
    assert marked.size and marked[0] >= 1.8 * RATE and marked[-1] <= padded.size - 1.8 * RATE
    assert speech_seconds(frames, 0, 2 * RATE) < 0.1
    assert speech_seconds(frames) > 0.7 * speech.size / RATE


def test_each_thread_reads_with_a_model_of_its_own():
    """Request threads never wait on each other's audio, and a thread's verdict is the same as alone."""
    from concurrent.futures import ThreadPoolExecutor

    speech = prepare_audio(str(SPEECH)).samples
    alone = speech_frames(speech)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(speech_frames, [speech] * 8))
    assert all(np.array_equal(frames, alone) for frames in together)


def test_the_predictor_reads_a_tone_as_no_speech(predictor):
    result = predictor.predict(audio=(RATE, SOUNDS["tone 300 Hz"]), text="I am fine.")
    assert result.used == ["text"] and "no speech" in result.missing["audio"]
    with pytest.raises(NothingToPredict, match="audio: no speech"):
        predictor.predict(audio=(RATE, SOUNDS["dial tone"]))


@pytest.mark.slow
def test_a_tone_clip_has_no_usable_speech_in_any_window_but_speech_does(predictor, tmp_path):
    face = None
    tone = compose_clip(tmp_path / "tone.mp4", [(face, SOUNDS["tone 300 Hz"], 3.0)], width=None)
    with pytest.raises(UnusableInput, match="no speech in this window"):
        predictor.predict_clip(str(tone), window_s=1.0, hop_s=0.5)
    speech = prepare_audio(str(SPEECH)).samples[: 3 * RATE]
    voice = compose_clip(tmp_path / "voice.mp4", [(face, speech, 3.0)], width=None)
    windows = predictor.predict_clip(str(voice), window_s=1.0, hop_s=0.5).windows
    assert sum(w.speech for w in windows) >= len(windows) - 1


@pytest.mark.slow
@pytest.mark.parametrize("corpus, column, rate", [("ravdess_speech", "path", 0.98), ("emodb", "file", 0.99)])
def test_speech_in_the_shared_corpora_is_found(shared_data, corpus, column, rate):
    """Every fourth clip of each corpus; measured on all of them: RAVDESS 1305 of 1320 (the 15 missed are shouted
    strong-intensity anger, fear and happiness), EmoDB 408 of 408."""
    labels = shared_data / corpus / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"{labels} not found")
    paths = pd.read_csv(labels)[column].iloc[::4]
    found = [
        speech_seconds(speech_frames(prepare_audio(str(shared_data / corpus / p)).samples)) >= MIN_SECONDS
        for p in paths
    ]
    assert np.mean(found) >= rate
