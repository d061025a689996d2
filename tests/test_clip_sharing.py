"""A clip being scored does not hold the model: predictions on the same Predictor (and torch thread) are answered while
the clip is still scoring, because the clip hands the model its work in short pieces (mculora.serving.clip)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mculora.preprocess.audio import prepare_audio
from mculora.serving.clip_writer import compose_clip

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


@pytest.mark.slow
def test_predictions_are_answered_while_a_clip_scores(predictor, tmp_path):
    assert predictor.torch_thread is not None  # as served: one model thread for every caller
    face = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    speech = prepare_audio(str(EXAMPLES / "happy_speech.wav")).samples
    clip = compose_clip(tmp_path / "long.mp4", [(face, speech, 4.0)] * 6, width=320, height=240)
    reading = threading.Event()
    finished: dict[str, float] = {}

    def progress(fraction: float, stage: str) -> None:
        if fraction > 0.1:
            reading.set()  # faces are being encoded on the model thread by now

    def score() -> None:
        predictor.predict_clip(str(clip), progress=progress)
        finished["clip"] = time.perf_counter()

    scorer = threading.Thread(target=score)
    scorer.start()
    assert reading.wait(timeout=120)
    answered = []
    while scorer.is_alive() and len(answered) < 5:
        predictor.predict(text="What a lovely day this is.")
        answered.append(time.perf_counter())
    scorer.join(timeout=300)
    assert "clip" in finished
    # Predictions came back one after another before the clip was done, not all queued behind it.
    assert len(answered) >= 3 and answered[2] < finished["clip"]
