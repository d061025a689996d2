"""Is there a voice in this audio? Usable speech is decided by a voice activity detector, not by loudness alone.

Loudness says that something sounds; a tone, music without singing, a fan or a dial tone behind a silent face are
loud too, and read as speech they would drive the audio path and, through fusion, the label. silero-vad (MIT) ships
its model inside its wheel, so it runs offline. It scores 32 ms frames of 16 kHz audio (about 0.5 ms each on one
core here); a frame is speech when its probability reaches `THRESHOLD`.

`speech_frames` marks every frame of a recording (a clip's soundtrack, once), `speech_seconds` counts the marked
frames within a stretch of samples (a clip window), and `require_speech` raises `UnusableInput` with the reason
unless `MIN_SECONDS` of a recording is speech, reading only as far as it takes to find them (a prediction's audio:
speech usually starts within its first half second, so a few frames decide). Snapshots, live frames, clip windows and
enrolment all decide through these three.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import MIN_SECONDS, TARGET_SAMPLE_RATE, without_thread_team

FRAME = 512  # samples at 16 kHz: the frame silero-vad scores
# silero-vad's default is 0.5; at 0.5 it found no speech in 22 of RAVDESS's 1320 clips (shouted, strong intensity),
# at 0.3 in 15, while the loudest sound without a voice measured here (a harmonic melody) peaks at 0.20.
THRESHOLD = 0.3

# The model keeps a recurrent state between frames: one model per thread, so that request threads never wait on
# each other's audio.
_local = threading.local()


def _model():
    if not hasattr(_local, "model"):
        from silero_vad import load_silero_vad

        _local.model = load_silero_vad()
    return _local.model


def _frames(audio: np.ndarray, enough: int | None = None) -> np.ndarray:
    """Whether each 32 ms frame of ``audio`` is speech; with ``enough``, stop after that many speech frames."""
    model = _model()
    samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    marks = np.zeros(audio.size // FRAME, bool)
    # Called on a server's request threads, like decoding: no OpenMP team of their own.
    with without_thread_team(), torch.inference_mode():
        model.reset_states()
        found = 0
        for k in range(marks.size):
            marks[k] = model(samples[k * FRAME : (k + 1) * FRAME], TARGET_SAMPLE_RATE).item() >= THRESHOLD
            found += marks[k]
            if enough is not None and found >= enough:
                break
    return marks


def speech_frames(audio: np.ndarray) -> np.ndarray:
    """Whether each 32 ms frame (`FRAME` samples) of 16 kHz mono float ``audio`` is speech."""
    return _frames(audio)


def speech_seconds(frames: np.ndarray, first: int = 0, last: int | None = None) -> float:
    """Seconds of speech ``frames`` (`speech_frames`) among samples ``[first, last)`` (default: all)."""
    last = frames.size * FRAME if last is None else last
    return float(frames[first // FRAME : last // FRAME].sum() * FRAME / TARGET_SAMPLE_RATE)


def no_speech_reason(seconds: float, where: str = "the audio") -> str:
    return (
        f"no speech in {where}: the voice activity detector found {seconds:.2f} s of speech, at least {MIN_SECONDS} s "
        "needed (a tone, music, noise or silence is not read as a voice)"
    )


def require_speech(audio: np.ndarray) -> None:
    """Raise `UnusableInput` unless at least `MIN_SECONDS` of ``audio`` (16 kHz mono) is speech."""
    needed = int(np.ceil(MIN_SECONDS * TARGET_SAMPLE_RATE / FRAME))
    seconds = speech_seconds(_frames(audio, enough=needed))
    if seconds < MIN_SECONDS - 1e-9:
        raise UnusableInput(no_speech_reason(seconds))
