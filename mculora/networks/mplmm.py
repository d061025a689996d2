"""MPLMM: prompt learning for missing modalities (Guo et al., ACL 2024), on the late-fusion backbone.

Three kinds of prompts, all selected per sample from its modality mask in one batched pass (no per-sample loop):

* **Generative prompts** stand in for a missing modality m: ``x̂_m = GELU(W_m [g_m ; mean_n f_{n→m}(x_n)])`` over the
  sample's available modalities n, where g_m is a learned vector and each f_{n→m} a linear map + GELU from modality
  n's standardised input (six maps in all). The paper mixes these along time with a convolution to m's sequence
  length; the inputs here are one vector per utterance, so the mixing is a linear map over the concatenation.
* **Missing-signal prompts** P_m^present and P_m^missing (one vector each per modality) are added to modality m's
  projected (or generated) input according to its state.
* **Missing-type prompts**: ``L_p`` tokens in front of each modality's utterance sequence, which the utterances attend
  to. For the sample's missing type, ``T_j · Σ_m s_m^{state} ⊗ M_m`` (T_j: L_p × d_p per encoder j, s: a d_p state
  vector per modality and state, M_m: a hidden-size map per modality), the paper's factorisation of 7 type prompts
  into per-modality parts.

The method that trains it: `mculora.training.methods.mplmm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mculora.modalities import MODALITIES
from mculora.model import BackboneConfig, keep_mask
from mculora.networks.late_fusion import LateFusionBackbone, plain_output
from mculora.networks.registry import register_network


@dataclass
class MPLMMPrompts:
    """The prompts' sizes: what MPLMM's network adds to the backbone's config."""

    prompt_length: int = 16  # L_p, the paper's value
    prompt_dim: int = 30  # d_p, the paper's value


@dataclass
class MPLMMConfig(BackboneConfig, MPLMMPrompts):
    """The network's architecture, as checkpoints save it: the backbone and the prompts."""


@register_network
class MPLMMNet(LateFusionBackbone):
    architecture = "mplmm"
    config_class = MPLMMConfig

    def __init__(self, config: MPLMMConfig):
        super().__init__(config)
        h, count = config.hidden, len(MODALITIES)
        dims = [config.feature_dims[m.value] for m in MODALITIES]
        # generate[n][m]: modality n's input -> a guess at modality m's projected input (n != m; diagonal unused)
        self.generate = nn.ModuleList(
            nn.ModuleList(nn.Linear(dims[n], h) if n != m else nn.Identity() for m in range(count))
            for n in range(count)
        )
        self.generative_prompt = nn.Parameter(torch.randn(count, h) * 0.02)
        self.mix = nn.ModuleList(nn.Linear(2 * h, h) for _ in range(count))
        self.signal_prompt = nn.Parameter(torch.zeros(count, 2, h))  # [modality, (missing, present), hidden]
        self.type_tokens = nn.Parameter(torch.randn(count, config.prompt_length, config.prompt_dim) * 0.02)
        self.state_vectors = nn.Parameter(torch.randn(count, 2, config.prompt_dim) * 0.02)
        self.type_maps = nn.Parameter(torch.randn(count, h) * 0.02)

    def prompt_parameters(self) -> list[nn.Parameter]:
        """What the second stage of the two-stage recipe trains besides the input projections and head."""
        tensors = [self.generative_prompt, self.signal_prompt, self.type_tokens, self.state_vectors, self.type_maps]
        return [*self.generate.parameters(), *self.mix.parameters(), *tensors]

    def type_prompts(self, present: torch.Tensor) -> torch.Tensor:
        """bool [B, 3] sample-level presence -> [B, 3 encoders, L_p, hidden] missing-type prompt tokens."""
        states = self.state_vectors[torch.arange(len(MODALITIES)), present.long()]  # [B, 3, d_p]
        mixed = torch.einsum("bmd,mh->bdh", states, self.type_maps)  # Σ_m s_m ⊗ M_m: [B, d_p, hidden]
        return torch.einsum("jld,bdh->bjlh", self.type_tokens, mixed)

    def forward(self, features, utterance_mask, modality_mask, available=None, combination=None):
        modality_mask = modality_mask.to(torch.bool)
        keep = keep_mask(utterance_mask, modality_mask, available)
        inputs = self.inputs(features, keep)
        prompts = self.type_prompts(modality_mask)
        reprs, encoded = {}, []
        for j, m in enumerate(MODALITIES):
            # Generated stand-in from the modalities this utterance has (mean over them; zero when it has none).
            sources = [n for n in range(len(MODALITIES)) if n != j]
            guesses = torch.stack([F.gelu(self.generate[n][j](inputs[MODALITIES[n]])) for n in sources], dim=2)
            weight = keep[:, :, sources].to(guesses.dtype).unsqueeze(-1)  # [B, L, 2, 1]
            guessed = (guesses * weight).sum(2) / weight.sum(2).clamp(min=1)
            prior = self.generative_prompt[j].expand_as(guessed)
            generated = F.gelu(self.mix[j](torch.cat([prior, guessed], dim=-1)))
            present = keep[:, :, j, None]
            x = torch.where(present, self.in_proj[m.value](inputs[m]), generated)
            x = x + self.signal_prompt[j][present.squeeze(-1).long()]
            # Every real utterance takes part: a missing modality's stand-in is what its encoder reads.
            reprs[m] = self.encode(m, x, utterance_mask, prompts[:, j])
            encoded.append(reprs[m])
        return plain_output(self.fuse(torch.cat(encoded, dim=-1)), modality_mask, reprs)
