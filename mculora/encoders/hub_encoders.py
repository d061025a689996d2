"""The opt-in ``hub`` profile: stronger pretrained encoders whose weights are downloaded on first use (Hugging Face
hub, torchaudio's pipeline storage) and cached. Nothing here runs in the default ``offline`` profile; when the
weights cannot be fetched, building an encoder fails with `EncoderUnavailable` saying so."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch

from mculora.encoders.base import Encoder, EncoderUnavailable
from mculora.encoders.sentence_encoder import TransformerSentenceEncoder
from mculora.hub_download import hub_reachable
from mculora.modalities import Modality

HUB_TEXT_MODEL = "sentence-transformers/all-mpnet-base-v2"
HUB_VISION_MODEL = "openai/clip-vit-base-patch32"
T = TypeVar("T")


def from_hub(load: Callable[[bool], T], what: str) -> T:
    """``load(local_only)`` from the local cache if possible, else downloaded; `EncoderUnavailable` if neither."""
    try:
        return load(True)
    except (OSError, EncoderUnavailable):
        pass
    if not hub_reachable():
        raise unreachable(what, ConnectionError("the Hugging Face hub cannot be reached from this machine"))
    try:
        return load(False)
    except (OSError, EncoderUnavailable) as error:
        raise unreachable(what, error.__cause__ or error) from None


def unreachable(what: str, error: BaseException) -> EncoderUnavailable:
    return EncoderUnavailable(
        f"the 'hub' encoder profile needs {what}, which could not be loaded from the cache or downloaded "
        f"({type(error).__name__}: {error}). Connect this machine to the internet once (the weights are cached), "
        "or use the default 'offline' profile."
    )


class HubSentenceEncoder(TransformerSentenceEncoder):
    """768-d all-mpnet-base-v2 sentence embeddings (mean pooling)."""

    def __init__(self, device: torch.device | str = "cpu"):
        def load(local_only: bool) -> None:
            super(HubSentenceEncoder, self).__init__("mpnet-base-v2-mean", HUB_TEXT_MODEL, device, local_only)

        from_hub(load, f"the text model {HUB_TEXT_MODEL}")


class Wav2Vec2Encoder(Encoder):
    """768-d wav2vec 2.0 (base) embeddings: the last layer's features averaged over time, on 16 kHz audio."""

    modality = Modality.AUDIO
    name = "wav2vec2-base-mean"
    dim = 768

    def __init__(self, device: torch.device | str = "cpu"):
        import torchaudio

        try:
            self.model = torchaudio.pipelines.WAV2VEC2_BASE.get_model().to(device).eval()
        except Exception as error:  # the download raises URLError, OSError, RuntimeError... depending on the failure
            raise unreachable("torchaudio's WAV2VEC2_BASE weights", error) from None
        self.device = torch.device(device)

    @torch.inference_mode()
    def encode(self, inputs: Sequence[np.ndarray]) -> torch.Tensor:
        vectors = []
        for samples in inputs:  # one at a time: clips differ in length and padding would leak into the mean
            layers, _ = self.model.extract_features(torch.as_tensor(samples, device=self.device)[None])
            vectors.append(layers[-1].mean(dim=1)[0])
        return torch.stack(vectors).float().cpu()


class ClipFaceEncoder(Encoder):
    """512-d CLIP image embeddings of the face crop."""

    modality = Modality.VISION
    name = "clip-vit-b32-face"
    dim = 512

    def __init__(self, device: torch.device | str = "cpu"):
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        def load(local_only: bool) -> tuple:
            return (
                CLIPImageProcessor.from_pretrained(HUB_VISION_MODEL, local_files_only=local_only),
                CLIPVisionModelWithProjection.from_pretrained(HUB_VISION_MODEL, local_files_only=local_only),
            )

        self.processor, model = from_hub(load, f"the image model {HUB_VISION_MODEL}")
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self._lock = threading.Lock()

    @torch.inference_mode()
    def encode(self, inputs: Sequence) -> torch.Tensor:
        with self._lock:
            pixels = self.processor(images=[face.crop for face in inputs], return_tensors="pt")["pixel_values"]
        return self.model(pixel_values=pixels.to(self.device)).image_embeds.float().cpu()
