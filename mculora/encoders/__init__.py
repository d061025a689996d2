"""Encoders by profile.

* ``offline`` (default): nothing is downloaded, and three small networks trained here on the corpora travel with each
  checkpoint and data set (``*_net.safetensors``). Text: all-MiniLM-L6-v2 from an installed package with its top two
  layers fine-tuned for emotion. Audio: an acoustic descriptor computed with torchaudio joined to a speech-emotion
  CNN over log-mel spectrograms. Vision: a geometric expression descriptor from mediapipe's 478-point face mesh (its
  model ships in the mediapipe wheel) joined to a facial-expression CNN trained on FER-2013.
* ``hub`` (opt-in): all-mpnet-base-v2 text, wav2vec 2.0 audio and CLIP face embeddings, downloaded on first use.

A checkpoint records the profile and each encoder's name and dimension; `check_encoders` refuses any other.
Encoders with trained weights read them from ``weights``: the directory of the checkpoint or data set they serve.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from mculora.encoders import face_net, speech_net, text_net
from mculora.encoders.base import Encoder, EncoderUnavailable
from mculora.modalities import MODALITIES, Modality

DEFAULT_PROFILE = "offline"


class EncoderMismatch(ValueError):
    """The encoders at hand are not the ones a checkpoint was trained with."""


# Files of trained encoder weights that a checkpoint or data set carries beside its own files.
WEIGHT_FILES = (face_net.WEIGHTS_FILE, speech_net.WEIGHTS_FILE, text_net.WEIGHTS_FILE)


def _weights_folder(weights: Path | None, modality: str, file: str) -> Path:
    if weights is None:
        raise EncoderUnavailable(
            f"the offline {modality} encoder needs a trained network: give the checkpoint (or data set) directory "
            f"that holds its {file}, e.g. checkpoints/default"
        )
    return weights / file


def _offline_audio(device, weights: Path | None) -> Encoder:
    return speech_net.SpeechEmotionEncoder(_weights_folder(weights, "audio", speech_net.WEIGHTS_FILE), device)


def _offline_text(device, weights: Path | None) -> Encoder:
    return text_net.EmotionTextEncoder(_weights_folder(weights, "text", text_net.WEIGHTS_FILE), device)


def _offline_vision(device, weights: Path | None) -> Encoder:
    return face_net.FaceExpressionEncoder(_weights_folder(weights, "vision", face_net.WEIGHTS_FILE), device)


def _hub(name: str) -> Callable[[torch.device, Path | None], Encoder]:
    def build(device, weights) -> Encoder:
        from mculora.encoders import hub_encoders

        return getattr(hub_encoders, name)(device)

    return build


PROFILES: dict[str, dict[Modality, Callable[[torch.device, Path | None], Encoder]]] = {
    "offline": {Modality.AUDIO: _offline_audio, Modality.TEXT: _offline_text, Modality.VISION: _offline_vision},
    "hub": {
        Modality.AUDIO: _hub("Wav2Vec2Encoder"),
        Modality.TEXT: _hub("HubSentenceEncoder"),
        Modality.VISION: _hub("ClipFaceEncoder"),
    },
}


def build_encoders(
    profile: str = DEFAULT_PROFILE,
    device: torch.device | str = "cpu",
    modalities: Iterable[Modality] = MODALITIES,
    weights: str | Path | None = None,
) -> dict[Modality, Encoder]:
    """The encoders of ``profile``; trained ones load from ``weights`` (a checkpoint or data set directory)."""
    if profile not in PROFILES:
        raise EncoderUnavailable(f"unknown encoder profile {profile!r}; available: {', '.join(PROFILES)}")
    weights = Path(weights) if weights is not None else None
    return {m: PROFILES[profile][m](torch.device(device), weights) for m in modalities}


def copy_encoder_weights(source: Path | None, destination: Path) -> None:
    """Copy the encoder weight files in ``source`` (if any) to ``destination``, so that it can be used alone."""
    if source is None or Path(source).resolve() == Path(destination).resolve():
        return
    for name in WEIGHT_FILES:
        if (Path(source) / name).is_file():
            shutil.copyfile(Path(source) / name, Path(destination) / name)


def describe_encoders(profile: str, encoders: dict[Modality, Encoder]) -> dict:
    """The record a checkpoint keeps: ``{"profile": ..., "audio": {"name": ..., "dim": ...}, ...}``."""
    return {"profile": profile, **{m.value: encoders[m].spec() for m in MODALITIES if m in encoders}}


def check_encoders(record: dict, encoders: dict[Modality, Encoder]) -> None:
    """Raise `EncoderMismatch` unless ``encoders`` produce exactly the features described by ``record``."""
    profile = record.get("profile")
    if profile not in PROFILES:
        raise EncoderMismatch(
            f"the checkpoint was trained on features from encoder profile {profile!r}, which mculora cannot compute "
            f"from raw media (profiles: {', '.join(PROFILES)}); use a checkpoint trained on extracted features"
        )
    for m, encoder in encoders.items():
        expected = record.get(m.value)
        if expected != encoder.spec():
            raise EncoderMismatch(
                f"the checkpoint expects {m.value} features {expected}, but the {profile!r} encoder gives "
                f"{encoder.spec()}; it was trained with different encoders"
            )


__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "Encoder",
    "EncoderMismatch",
    "EncoderUnavailable",
    "build_encoders",
    "check_encoders",
    "copy_encoder_weights",
    "describe_encoders",
]
