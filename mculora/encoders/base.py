"""The encoder interface: raw (preprocessed) inputs of one modality in, fixed-size feature vectors out."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch

from mculora.modalities import Modality


class EncoderUnavailable(RuntimeError):
    """An encoder cannot be built here (its weights cannot be found or fetched); the message says what to do."""


class Encoder(ABC):
    """One modality's feature extractor.

    ``name`` identifies the exact extractor (model + pooling + descriptor version): a checkpoint records it and
    refuses inputs from any other encoder. ``dim`` is the length of the vectors ``encode`` returns.
    """

    modality: ClassVar[Modality]
    name: str
    dim: int

    @abstractmethod
    def encode(self, inputs: Sequence) -> torch.Tensor:
        """A batch of preprocessed inputs -> float32 [len(inputs), dim] on the CPU."""

    def spec(self) -> dict:
        return {"name": self.name, "dim": self.dim}

    def trained_parameters(self) -> int:
        """How many learned weights the encoder runs (0 for a hand-built descriptor): its size in a report."""
        return 0


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """Eight hex digits of a hash over trained weights: part of the name of an encoder that runs them, so that a
    checkpoint refuses features computed with any other weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:8]
