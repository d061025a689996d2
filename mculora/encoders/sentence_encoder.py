"""Sentence embeddings from a transformers encoder, mean-pooled and L2-normalised like the sentence-transformers
models they come from (the hub profile's text encoder; the offline one, `text_net`, builds on the same pooling)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

from mculora.encoders.base import Encoder, EncoderUnavailable
from mculora.modalities import Modality

MAX_TOKENS = 256  # the model's max_seq_length


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token embeddings over real (non-padding) tokens."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class TransformerSentenceEncoder(Encoder):
    """A transformers encoder with mean pooling. Subclasses say where the weights come from."""

    modality = Modality.TEXT

    def __init__(self, name: str, source: str, device: torch.device | str = "cpu", local_only: bool = True):
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            self.model = AutoModel.from_pretrained(source, local_files_only=local_only).to(device).eval()
        except OSError as error:
            reason = f"text encoder {name!r} could not load its weights from {source!r}: {error}"
            raise EncoderUnavailable(reason) from None
        self.name, self.device = name, torch.device(device)
        self.dim = int(self.model.config.hidden_size)
        # Tokenizers are not safe to share between threads; a web server encodes from several.
        self._lock = threading.Lock()

    def trained_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.inference_mode()
    def encode(self, inputs: Sequence[str]) -> torch.Tensor:
        with self._lock:
            tokens = self.tokenizer(
                list(inputs), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            ).to(self.device)
            hidden = self.model(**tokens).last_hidden_state
        embedding = torch.nn.functional.normalize(mean_pool(hidden, tokens["attention_mask"]), dim=-1)
        return embedding.float().cpu()
