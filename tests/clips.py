"""Talking-face clips of known labels, built from the shared data: still faces (FER-2013 PublicTest) muxed with speech
(RAVDESS test speakers 19-22) that the served model recognises on their own, so a clip's timeline can be checked
against the labels its parts were chosen for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mculora.preprocess.audio import prepare_audio
from mculora.serving.clip_writer import compose_clip

TEST_ACTORS = (19, 20, 21, 22)  # RAVDESS speakers outside the encoders' training split
_FER = {"happiness": "happy", "anger": "angry", "sadness": "sad", "surprise": "surprise"}
_RAVDESS = {"happiness": "happy", "anger": "angry", "sadness": "sad", "surprise": "surprised"}


@dataclass
class Part:
    label: str
    face: np.ndarray  # RGB
    speech: np.ndarray  # 16 kHz mono, silence trimmed


def confident_part(predictor, shared_data: Path, label: str, threshold: float = 0.6, seconds: float = 4.0) -> Part:
    """The first PublicTest face of ``label`` that the model alone assigns to ``label`` with probability >=
    ``threshold``, and the first test-speaker utterance of ``label`` whose every 2 s window, looped to ``seconds``
    (as `two_part_clip` plays it), the model assigns to ``label``."""
    faces = pd.read_csv(shared_data / "fer2013" / "labels.csv")
    faces = faces[(faces.label == _FER[label]) & (faces.fer2013_usage == "PublicTest")]
    face = next(
        path
        for path in faces.path.head(60)
        if predictor.predict(image=str(shared_data / "fer2013" / path)).probabilities[label] >= threshold
    )
    speech = pd.read_csv(shared_data / "ravdess_speech" / "labels.csv")
    speech = speech[(speech.emotion == _RAVDESS[label]) & speech.actor.isin(TEST_ACTORS) & (speech.intensity == 2)]

    def recognised(path: str) -> bool:
        track = looped(prepare_audio(str(shared_data / "ravdess_speech" / path)).samples, seconds)
        windows = [track[16_000 * k : 16_000 * (k + 2)] for k in range(int(seconds) - 1)]
        return all(predictor.predict(audio=(16_000, w)).label == label for w in windows)

    audio = next(path for path in speech.path if recognised(path))
    rgb = np.asarray(Image.open(shared_data / "fer2013" / face).convert("RGB"))
    return Part(label, rgb, prepare_audio(str(shared_data / "ravdess_speech" / audio)).samples)


def looped(speech: np.ndarray, seconds: float, gap_s: float = 0.15, rate: int = 16_000) -> np.ndarray:
    """``speech`` repeated with short gaps to fill ``seconds``, as someone talking on."""
    gap = np.zeros(round(gap_s * rate), np.float32)
    reps = int(np.ceil(seconds * rate / (speech.size + gap.size)))
    return np.concatenate([np.concatenate([speech, gap])] * reps)[: round(seconds * rate)]


def two_part_clip(path: Path, first: Part, second: Part, half_s: float = 4.0, **options) -> Path:
    """``first`` for ``half_s`` seconds, then ``second``: each face on screen while its voice speaks."""
    parts = [(part.face, looped(part.speech, half_s), half_s) for part in (first, second)]
    return compose_clip(path, parts, **options)
