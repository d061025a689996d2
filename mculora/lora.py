"""Combination-aware low-rank adapters (MCLA's building block).

A `CombinationLoRALinear` is a linear layer with two kinds of low-rank side branches:

* one *shared* adapter ``B_s A_s`` that every sample uses, whatever its modalities, and
* one adapter ``B_k A_k`` per modality combination k (atv, at, ..., v), used only by the samples whose
  available modalities form combination k.

Samples in one batch may have different combinations: each sample is routed to its own adapter, and only the
adapters that occur in the batch are computed (the reference implementation runs all eight streams every time).
As in LoRA, ``B`` starts at zero, so a fresh adapter leaves the layer's output unchanged; ``combination_init_std``
can start the combination adapters' ``B`` at small random values instead (one of the remedies compared for the
combination streams, see `mculora.model`).

LoRA dropout is drawn once per call on the shared stream's input. The combination adapter reads that same dropped
input when it starts a stream (``xs`` omitted) and reads ``xs`` undropped otherwise, as the reference code does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from mculora.modalities import COMBINATIONS

SHARED = "shared"


class LoRAParts(NamedTuple):
    """The output of a `CombinationLoRALinear`, kept apart so callers can build either stream and attribute logits."""

    base: torch.Tensor  # W x + b
    shared: torch.Tensor  # B_s A_s x
    combination: torch.Tensor  # B_k A_k xs, k = each sample's combination

    @property
    def shared_stream(self) -> torch.Tensor:
        return self.base + self.shared


class CombinationLoRALinear(nn.Module):
    """``nn.Linear`` plus a shared adapter and one adapter per modality combination.

    Args:
        in_features, out_features, bias: as for ``nn.Linear``.
        rank: adapter rank; 0 builds the plain linear layer (no adapters), which the baseline method uses.
        dropout: dropout on the adapters' input (not on the base path), as in LoRA.
        combination_init_std: std of the normal initialisation of the combination adapters' ``B``; 0 = zeros.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        dropout: float = 0.1,
        bias: bool = True,
        combination_init_std: float = 0.0,
    ):
        super().__init__()
        self.base = nn.Linear(in_features, out_features, bias=bias)
        self.rank = rank
        self.combination_init_std = combination_init_std
        if rank > 0:
            names = (SHARED, *COMBINATIONS)
            self.lora_A = nn.ModuleDict({name: nn.Linear(in_features, rank, bias=False) for name in names})
            self.lora_B = nn.ModuleDict({name: nn.Linear(rank, out_features, bias=False) for name in names})
            self.lora_dropout = nn.Dropout(dropout)
            self.reset_adapters()

    @property
    def has_adapters(self) -> bool:
        return self.rank > 0

    def reset_adapters(self) -> None:
        """A as nn.Linear's default (Kaiming-uniform, a=sqrt(5)); B = 0, so a fresh adapter adds exactly nothing,
        except the combination adapters' B when ``combination_init_std`` > 0."""
        for name in self.lora_A:
            nn.init.kaiming_uniform_(self.lora_A[name].weight, a=math.sqrt(5))
            if name != SHARED and self.combination_init_std > 0:
                nn.init.normal_(self.lora_B[name].weight, std=self.combination_init_std)
            else:
                nn.init.zeros_(self.lora_B[name].weight)

    def adapter(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``B_name A_name x`` for one adapter ("shared" or a combination name); ``x`` is already dropped out."""
        return self.lora_B[name](self.lora_A[name](x))

    def forward(self, x: torch.Tensor, combination: torch.Tensor, xs: torch.Tensor | None = None) -> LoRAParts:
        """
        Args:
            x: shared-stream input [B, ..., in_features].
            combination: long [B], each sample's combination index (see `mculora.modalities`); -1 routes a sample
                to no combination adapter (an all-missing sample of the reference protocol).
            xs: combination-stream input [B, ..., in_features]; the combination adapter reads the dropped-out ``x``
                when omitted (the first layer of a stream).
        """
        base = self.base(x)
        if not self.has_adapters:
            zeros = torch.zeros_like(base)
            return LoRAParts(base, zeros, zeros)
        dropped = self.lora_dropout(x)
        shared = self.adapter(SHARED, dropped)
        return LoRAParts(base, shared, self.route(dropped if xs is None else xs, combination, base))

    def route(self, stream_in: torch.Tensor, combination: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Each sample's combination adapter applied to its rows of ``stream_in`` (zeros, shaped ``like``, where the
        combination is -1). Only the adapters that occur in the batch are computed."""
        present = torch.unique(combination).tolist()
        if len(present) == 1 and present[0] >= 0:  # one combination for the whole batch, as at inference: no scatter
            return self.adapter(COMBINATIONS[present[0]], stream_in)
        routed = torch.zeros_like(like)
        for k in present:
            if k < 0:
                continue
            rows = (combination == k).nonzero(as_tuple=True)[0]
            routed = routed.index_copy(0, rows, self.adapter(COMBINATIONS[k], stream_in.index_select(0, rows)))
        return routed
