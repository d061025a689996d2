"""The late-fusion backbone: MCULoRA's network without its adapters. The baseline trains it as it is; the peer methods
build on it (MPLMM's prompts, Wander's adapter), written so that a method can change what enters each modality's
encoder (generated features, prompt tokens) and what the fused representation gets added.

    per modality:  standardise -> in_proj_m -> depth x [self-attention over the utterances (+ prompt tokens) + MLP]
    fusion:        h0 = [x_a, x_t, x_v] (+ an adapter's output);  hidden = dropout(relu(fusion(h0))) + h0
    head:          logits = head(hidden)

The sizes are MCULoRA's (`BackboneConfig`: hidden, depth, heads), so a comparison differs only in the method.
Missing modalities are zeroed and masked out of attention, as in MCULoRA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mculora.dropout import Dropout
from mculora.modalities import MODALITIES, Modality, mask_to_index
from mculora.model import BackboneConfig, FusionNetwork, ModelOutput, UtteranceAttention, keep_mask
from mculora.networks.registry import register_network


class EncoderLayer(nn.Module):
    """Attention over the utterances (and any prompt tokens in front of them), then an MLP; both residual."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attention = UtteranceAttention(hidden, heads, 0.0)
        self.fc1, self.fc2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x, key_mask)
        return x + attended + self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(attended)))))


@register_network
class LateFusionBackbone(FusionNetwork):
    architecture = "late-fusion"
    config_class = BackboneConfig

    def __init__(self, config: BackboneConfig):
        super().__init__()
        config.check_data()
        self.config = config
        h, fused = config.hidden, config.hidden * len(MODALITIES)
        self.in_proj = nn.ModuleDict({m.value: nn.Linear(config.feature_dims[m.value], h) for m in MODALITIES})
        self.layers = nn.ModuleDict(
            {
                m.value: nn.ModuleList(EncoderLayer(h, config.heads, config.dropout) for _ in range(config.depth))
                for m in MODALITIES
            }
        )
        self.register_input_statistics(config.feature_dims)
        self.fusion = nn.Linear(fused, fused)
        self.head = nn.Linear(fused, config.num_outputs)
        self.dropout = Dropout(config.dropout)

    def inputs(self, features: dict[Modality, torch.Tensor], keep: torch.Tensor) -> dict[Modality, torch.Tensor]:
        """Standardised features, zero where ``keep`` [B, L, 3] is False."""
        out = {}
        for i, m in enumerate(MODALITIES):
            standardised = self.standardise(m, features[m])
            out[m] = standardised * keep[:, :, i, None].to(standardised.dtype)
        return out

    def encode(self, m: Modality, x: torch.Tensor, key_mask: torch.Tensor, prompts: torch.Tensor | None = None):
        """One modality's encoder on its projected inputs [B, L, hidden]; ``prompts`` [B, P, hidden] are tokens the
        utterances can attend to (and that attend to them), dropped from the output."""
        x = self.dropout(x)
        if prompts is not None:
            x = torch.cat([prompts, x], dim=1)
            key_mask = torch.cat([key_mask.new_ones(prompts.shape[:2]), key_mask], dim=1)
        for layer in self.layers[m.value]:
            x = layer(x, key_mask)
        return x if prompts is None else x[:, prompts.shape[1] :]

    def fuse(self, h0: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(F.relu(self.fusion(h0))) + h0)

    def fusion_input(self, encoded: list[torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        """h0, what the fusion reads: the modalities' representations side by side (a method may add to it)."""
        return torch.cat(encoded, dim=-1)

    def forward(self, features, utterance_mask, modality_mask, available=None, combination=None) -> ModelOutput:
        """`mculora.model.MCULoRA.forward`'s interface; ``combination`` is accepted and unused (nothing is routed)."""
        modality_mask = modality_mask.to(torch.bool)
        keep = keep_mask(utterance_mask, modality_mask, available)
        inputs = self.inputs(features, keep)
        reprs = {m: self.encode(m, self.in_proj[m.value](inputs[m]), keep[:, :, i]) for i, m in enumerate(MODALITIES)}
        return plain_output(self.fuse(self.fusion_input([reprs[m] for m in MODALITIES], keep)), modality_mask, reprs)


def plain_output(logits: torch.Tensor, modality_mask: torch.Tensor, reprs: dict[Modality, torch.Tensor]) -> ModelOutput:
    """A `ModelOutput` for a network without MCULoRA's adapters: all of the logits are the base term, and there is
    no combination-specific part."""
    zeros = torch.zeros_like(logits)
    return ModelOutput(
        logits=logits,
        base=logits,
        shared=zeros,
        combination_term=zeros,
        combination_index=mask_to_index(modality_mask.to(torch.bool)),
        specific_share=logits.new_zeros(logits.shape[0], len(MODALITIES)),
        shared_repr=reprs,
        combination_repr=reprs,
    )
