"""Combination-aware low-rank adapters (MCLA's building block).

A `CombinationLoRALinear` is a linear layer with two kinds of low-rank side branches:

* one *shared* adapter ``B_s A_s`` that every sample uses, whatever its modalities, and
* one adapter ``B_k A_k`` per modality combination k (atv, at, ..., v), used only by the samples whose
  available modalities form combination k.

Samples in one batch may have different combinations: each sample is routed to its own adapter, and only the
adapters that occur in the batch are computed (the reference implementation runs all eight streams every time); at
inference a batch of several combinations runs their adapters as one masked adapter (`AdapterRows.block_mask`).
As in LoRA, ``B`` starts at zero, so a fresh adapter leaves the layer's output unchanged; ``combination_init_std``
can start the combination adapters' ``B`` at small random values instead (one of the remedies compared for the
combination streams, see `mculora.model`).

LoRA dropout is drawn once per call on the shared stream's input. The combination adapter reads that same dropped
input when it starts a stream (``xs`` omitted) and reads ``xs`` undropped otherwise, as the reference code does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mculora.dropout import Dropout
from mculora.modalities import COMBINATIONS

SHARED = "shared"


class SharedParts(NamedTuple):
    """What a `CombinationLoRALinear` computes whatever the routing: the base output, the shared adapter's, and the
    dropped-out input that the shared adapter read (a combination stream starting at this layer reads it too)."""

    base: torch.Tensor  # W x + b
    shared: torch.Tensor  # B_s A_s x
    dropped: torch.Tensor | None  # dropout(x); None without adapters

    @property
    def shared_stream(self) -> torch.Tensor:
        return self.base + self.shared


@dataclass
class AdapterRows:
    """Which samples use which combination adapter, worked out once per forward pass and shared by every layer
    (finding the combinations present reads the index back from the device, which each layer should not repeat)."""

    index: torch.Tensor  # long [B]: each sample's combination, -1 for none
    present: tuple[int, ...]  # the values in ``index``, sorted
    _block_masks: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)
    _rows: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)
    _restore: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def of(cls, index: torch.Tensor) -> AdapterRows:
        return cls(index, tuple(torch.unique(index).tolist()))

    @property
    def whole(self) -> int | None:
        """The combination of every sample when the batch has just one, else None."""
        return self.present[0] if len(self.present) == 1 and self.present[0] >= 0 else None

    @property
    def combinations(self) -> tuple[int, ...]:
        """The combinations the batch uses (``present`` without -1)."""
        return tuple(k for k in self.present if k >= 0)

    def rows(self, combination: int) -> torch.Tensor:
        """The batch rows of one combination (-1: of the samples without one), in batch order. Made once per
        combination."""
        if combination not in self._rows:
            self._rows[combination] = (self.index == combination).nonzero(as_tuple=True)[0]
        return self._rows[combination]

    @property
    def restore(self) -> torch.Tensor:
        """long [B]: each sample's position among the rows of every combination in ``present`` stacked in that
        order, so ``torch.cat(blocks)[restore]`` puts per-combination blocks back in batch order. Made once."""
        if self._restore is None:
            order = torch.cat([self.rows(k) for k in self.present])
            self._restore = torch.empty_like(order)
            self._restore[order] = torch.arange(len(order), device=order.device)
        return self._restore

    def block_mask(self, rank: int, dtype: torch.dtype) -> torch.Tensor:
        """[B, 1, len(combinations) x rank]: over the ranks of the batch's combination adapters side by side, ones on
        the block of each sample's own combination and zeros elsewhere (all zeros for a sample without one). Made
        once per rank."""
        if rank not in self._block_masks:
            slot = torch.zeros(len(COMBINATIONS), dtype=torch.long, device=self.index.device)
            slot[list(self.combinations)] = torch.arange(len(self.combinations), device=self.index.device)
            own = F.one_hot(slot[self.index.clamp(min=0)], len(self.combinations)) * (self.index >= 0)[:, None]
            self._block_masks[rank] = own.repeat_interleave(rank, dim=1)[:, None, :].to(dtype)
        return self._block_masks[rank]


class CombinationLoRALinear(nn.Module):
    """``nn.Linear`` plus a shared adapter and one adapter per modality combination. The model uses it in two calls,
    `shared_parts` (the base and shared outputs, whatever the routing) and `route` (each sample's combination adapter
    on the combination stream), so that routing-independent work is done once for several routings.

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
            self.lora_dropout = Dropout(dropout)
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
        """``B_name A_name x`` for one adapter ("shared" or a combination name); ``x`` is already dropped out. The
        weights are applied directly, not through their modules' calls: at one utterance the calls' overhead was an
        eighth of the fusion forward."""
        return F.linear(F.linear(x, self.lora_A[name].weight), self.lora_B[name].weight)

    def shared_parts(self, x: torch.Tensor) -> SharedParts:
        """The routing-independent part: ``W x + b`` and the shared adapter's output on the shared stream's input
        ``x``, computed once however many routings use them (`mculora.model.MCULoRA.forward_conditions`)."""
        base = self.base(x)
        if not self.has_adapters:
            return SharedParts(base, torch.zeros_like(base), None)
        dropped = self.lora_dropout(x)
        return SharedParts(base, self.adapter(SHARED, dropped), dropped)

    def route(
        self, stream_in: torch.Tensor, combination: torch.Tensor | AdapterRows, like: torch.Tensor
    ) -> torch.Tensor:
        """Each sample's combination adapter ``B_k A_k`` applied to its rows of ``stream_in``, the combination
        stream's input (zeros, shaped ``like``, where the combination is -1, and everywhere without adapters).
        ``combination``: long [B], each sample's combination index (`mculora.modalities`), or its `AdapterRows`.
        Only the adapters that occur in the batch are computed."""
        if not self.has_adapters:
            return torch.zeros_like(like)
        routes = combination if isinstance(combination, AdapterRows) else AdapterRows.of(combination)
        if routes.whole is not None:  # one combination for the whole batch, as at inference: no scatter
            return self.adapter(COMBINATIONS[routes.whole], stream_in)
        if routes.present[-1] < 0:  # no sample has a combination
            return torch.zeros_like(like)
        if torch.is_grad_enabled():
            # Training: each combination's adapter on its own rows, stacked and put back in batch order (two copies,
            # where copying each block into the batch would copy the whole batch once per combination). The masked
            # form below computes the same up to float rounding and is no faster once the matmuls dominate; this one
            # keeps trained weights bit for bit.
            blocks = [
                like.new_zeros((len(routes.rows(k)), *like.shape[1:]))
                if k < 0
                else self.adapter(COMBINATIONS[k], stream_in.index_select(0, routes.rows(k)))
                for k in routes.present
            ]
            return torch.cat(blocks).index_select(0, routes.restore)
        # Inference on several combinations (the ablation): their adapters side by side as one adapter of rank
        # k x r, with each sample's hidden units outside its own combination's block zeroed. A fixed number of
        # operations however many combinations the batch holds, and the same result as each sample's adapter alone.
        names = [COMBINATIONS[k] for k in routes.combinations]
        a = torch.cat([self.lora_A[name].weight for name in names])  # [k r, in]
        b = torch.cat([self.lora_B[name].weight for name in names], dim=1)  # [out, k r]
        rows = stream_in.reshape(stream_in.shape[0], -1, stream_in.shape[-1])  # [B, N, in]
        hidden = F.linear(rows, a) * routes.block_mask(self.rank, rows.dtype)
        return F.linear(hidden, b).reshape(like.shape)


def adapter_layers(model: nn.Module) -> dict[str, CombinationLoRALinear]:
    """Every layer with adapters, by its name in the model, in data-flow order (in_proj.*, layers.*, fusion, head)."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, CombinationLoRALinear) and module.has_adapters
    }
