"""Wander: a low-rank multimodal adapter (Guo et al., AAAI 2025), on the late-fusion backbone, made missing-aware.

The adapter fuses the modalities by an outer product in CP-decomposed form. Each modality's encoded utterance x_m is
projected down (linear + GELU to ``rank`` values) and extended by a constant 1, x̃_m = [GELU(D_m x_m) ; 1]; the fused
vector is

    z = Σ_{r=1..R} Π_m (x̃_m W_r^m)        (W_r^m: (rank + 1) × hidden, R = ``cp_rank``)

an R-term CP decomposition of the full outer-product (tensor) fusion: the Hadamard product over modalities of
rank-one factors, summed over the R terms. The released fork sums the factors over R *before* the product,
Π_m (x̃_m Σ_r W_r^m), which is a single rank-one term: the R factors collapse into one and the rank hyperparameter
does nothing. The sum of products is the CP form the paper describes, so that is what is built here.

**Missing modalities.** In the fork an absent modality's zero features zero its factor and so the whole product.
Here an absent modality's x̃_m is [0 ; 1]: its factor is the learned last row of W_r^m, a per-modality "absent"
vector, so the product keeps the present modalities' interaction (the constant 1 is also what lets the product carry
every lower-order term, as in tensor-fusion networks). z goes through a zero-initialised output map and is added to
the backbone's concatenated representation, so a fresh adapter changes nothing.

The token-level factor of the paper (mixing a sequence's time steps) has nothing to mix here: the inputs are one
vector per utterance, and the utterances of a dialogue are already mixed by the backbone's attention.

The method that trains it: `mculora.training.methods.wander`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mculora.modalities import MODALITIES
from mculora.model import BackboneConfig
from mculora.networks.late_fusion import LateFusionBackbone
from mculora.networks.registry import register_network


@dataclass
class WanderAdapterSize:
    """The fusion adapter's ranks: what Wander's network adds to the backbone's config."""

    rank: int = 16  # the fork's default
    cp_rank: int = 8  # the fork's drank


@dataclass
class WanderConfig(BackboneConfig, WanderAdapterSize):
    """The network's architecture, as checkpoints save it: the backbone and the adapter's ranks."""


class CPFusionAdapter(nn.Module):
    def __init__(self, hidden: int, rank: int, cp_rank: int, out_features: int):
        super().__init__()
        count = len(MODALITIES)
        self.down = nn.ModuleList(nn.Linear(hidden, rank) for _ in range(count))
        # factors[m]: [R, rank + 1, hidden]; scaled so each factor's output starts near unit size
        self.factors = nn.Parameter(torch.randn(count, cp_rank, rank + 1, hidden) / (rank + 1) ** 0.5)
        self.out = nn.Linear(hidden, out_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def fused(self, encoded: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """encoded: [B, L, hidden] per modality; present: bool [B, L, 3] -> z [B, L, hidden]."""
        product = None
        for j, x in enumerate(encoded):
            down = F.gelu(self.down[j](x)) * present[:, :, j, None].to(x.dtype)
            extended = torch.cat([down, torch.ones_like(down[..., :1])], dim=-1)  # x̃_m = [down ; 1]
            factor = torch.einsum("blk,rkh->blrh", extended, self.factors[j])  # one factor per CP term
            product = factor if product is None else product * factor
        return product.sum(dim=2)

    def forward(self, encoded: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        return self.out(self.fused(encoded, present))


@register_network
class WanderNet(LateFusionBackbone):
    architecture = "wander"
    config_class = WanderConfig

    def __init__(self, config: WanderConfig):
        super().__init__(config)
        self.adapter = CPFusionAdapter(config.hidden, config.rank, config.cp_rank, config.hidden * len(MODALITIES))

    def fusion_input(self, encoded: list[torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        return super().fusion_input(encoded, keep) + self.adapter(encoded, keep)
