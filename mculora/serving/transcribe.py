"""Speech-to-text for clips, opt-in only: a Whisper model from the Hugging Face Hub that the user names.

The default profile never transcribes: a clip's text comes from a timed transcript or a typed sentence. With
``transcribe="owner/name[@revision]"`` (``--transcribe`` on the command line and in the app) the model is downloaded
once into the Hub cache through `mculora.hub_download.snapshot` (an unreachable Hub fails at once with a clear
message, a cached copy is used offline) and transformers' automatic-speech-recognition pipeline turns the soundtrack
into timed cues, which then give each window its text like a transcript file would. A local model directory works too.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from mculora import hub_download
from mculora.preprocess.audio import TARGET_SAMPLE_RATE
from mculora.preprocess.transcript import Cue

# What a transformers speech-to-text repository needs (weights, configs, the tokenizer's vocabulary and merges), and
# its model card (licence, intended use).
MODEL_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.md"]
# Whisper reads 30 s at a time; longer soundtracks are cut into chunks of this length.
CHUNK_SECONDS = 30

_pipelines: dict[Path, object] = {}
_lock = threading.Lock()


class TranscriptionError(ValueError):
    """The named model cannot be fetched or is not a speech-to-text model."""


def model_directory(model: str | Path) -> Path:
    """A local directory as is; otherwise ``owner/name[@revision]`` fetched from the Hub (or its cache)."""
    local = Path(model)
    if local.is_dir():
        return local
    try:
        return hub_download.snapshot(str(model), MODEL_PATTERNS, "speech-to-text model")
    except hub_download.HubError as error:
        raise TranscriptionError(str(error)) from None


def _pipeline(directory: Path, device):
    with _lock:
        if directory not in _pipelines:
            from transformers import pipeline

            try:
                _pipelines[directory] = pipeline("automatic-speech-recognition", model=str(directory), device=device)
            except (OSError, ValueError, KeyError) as error:
                raise TranscriptionError(
                    f"{directory.name} is not a speech-to-text model transformers can load: {error}"
                ) from None
        return _pipelines[directory]


def transcribe(samples: np.ndarray, model: str | Path, device=None) -> list[Cue]:
    """Timed cues of 16 kHz mono ``samples`` from the Whisper (or other transformers ASR) ``model``; a chunk without
    an end time ends with the audio."""
    recogniser = _pipeline(model_directory(model), device)
    duration = samples.size / TARGET_SAMPLE_RATE
    # Whisper reads 30 s windows; only a longer soundtrack needs the pipeline's chunking.
    chunking = {"chunk_length_s": CHUNK_SECONDS} if duration > CHUNK_SECONDS else {}
    output = recogniser(
        {"raw": np.asarray(samples, dtype=np.float32), "sampling_rate": TARGET_SAMPLE_RATE},
        return_timestamps=True,
        **chunking,
    )
    cues = []
    for chunk in output.get("chunks") or [{"timestamp": (0.0, duration), "text": output.get("text", "")}]:
        start, end = chunk.get("timestamp") or (0.0, duration)
        text = " ".join(str(chunk.get("text", "")).split())
        start = min(float(start or 0.0), duration)
        end = min(float(end), duration) if end is not None else duration
        if text and end >= start:
            cues.append(Cue(start, end, text))
    return cues
