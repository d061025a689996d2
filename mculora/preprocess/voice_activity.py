"""Is there a voice in this audio? Usable speech is decided by a voice activity detector, not by loudness alone.

Loudness says that something sounds; a tone, music without singing, a fan or a dial tone behind a silent face are
loud too, and read as speech they would drive the audio path and, through fusion, the label. silero-vad (MIT) ships
its model inside its wheel, so it runs offline; it scores 32 ms frames of 16 kHz audio at about 15 ms of CPU per second
of audio here.

`speech_spans` gives the stretches of speech in a prepared 16 kHz recording, `speech_seconds` how much of a stretch
of samples they cover, and `require_speech` raises `UnusableInput` with the reason when too little of a recording is
speech. The snapshot and live paths, clip windows and enrolment all decide through these three.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import torch

from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import MIN_SECONDS, TARGET_SAMPLE_RATE, without_thread_team

# silero-vad's own defaults: a frame is speech above probability 0.5; shorter bursts than 250 ms are dropped.
THRESHOLD = 0.3
MIN_BURST_MS = 250

# The model keeps a recurrent state between frames: one caller at a time.
_LOCK = threading.Lock()


@functools.cache
def _model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_spans(audio: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last), ...]`` sample ranges of speech in 16 kHz mono float ``audio``, in time order."""
    from silero_vad import get_speech_timestamps

    if audio.size == 0:
        return []
    samples = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    # Called on a server's request threads, like decoding: no OpenMP team of their own.
    with _LOCK, without_thread_team(), torch.inference_mode():
        found = get_speech_timestamps(
            samples,
            _model(),
            threshold=THRESHOLD,
            sampling_rate=TARGET_SAMPLE_RATE,
            min_speech_duration_ms=MIN_BURST_MS,
        )
    return [(int(span["start"]), int(span["end"])) for span in found]


def speech_seconds(spans: list[tuple[int, int]], first: int = 0, last: int | None = None) -> float:
    """Seconds of ``spans`` that fall within samples ``[first, last)`` (default: all)."""
    last = np.inf if last is None else last
    covered = sum(max(0, min(end, last) - max(start, first)) for start, end in spans)
    return float(covered / TARGET_SAMPLE_RATE)


def no_speech_reason(seconds: float, where: str = "the audio") -> str:
    return (
        f"no speech in {where}: the voice activity detector found {seconds:.2f} s of speech, at least {MIN_SECONDS} s "
        "needed (a tone, music, noise or silence is not read as a voice)"
    )


def require_speech(audio: np.ndarray) -> None:
    """Raise `UnusableInput` unless at least `MIN_SECONDS` of ``audio`` (16 kHz mono) is speech."""
    seconds = speech_seconds(speech_spans(audio))
    if seconds < MIN_SECONDS:
        raise UnusableInput(no_speech_reason(seconds))
