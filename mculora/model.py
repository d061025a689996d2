"""The MCULoRA network: modality-combination-aware low-rank adaptation for incomplete multimodal emotion recognition.

References: Zhao, Shu, Wu et al., "MCULoRA" (arXiv 2507.11202); the layer structure follows the paper-era reference
implementation (github.com/gdace829/MCULoRA), and README.md lists where this code departs from it and why.

Data flow for one sample (a dialogue of L utterances, or a single utterance with L = 1):

    per modality m:  in_proj_m -> depth x [self-attention over utterances + MLP]  ->  x_m (shared stream)
                                 \\-> combination stream xs_m: the same layers' combination adapters, chained
    fusion:          h0 = [x_a, x_t, x_v];  hidden = dropout(relu(proj(h0))) + h0
    head:            logits = base(hidden) + shared(hidden) + combination(xs)    (exact decomposition)

The combination stream is linear: each layer maps xs to ``[W x + b] + [xs] + B_k A_k xs``. The bracketed terms
are options. ``W x + b`` (the layer's base output on the shared stream) is the paper-era code's branch. ``xs``, an
identity path wherever a layer keeps the width (the MLP linears and the fusion projection), is what lets the
combination adapters learn: without it ("chain", the paper's code) the gradient reaching a layer's combination
adapter is a product through every later layer's B_k A_k, which starts at zero, so all but the last layers' combination
adapters stay dead. The model also tracks the *combination-specific part* of each stream (everything the combination
adapters added), which the demo plots and DPFT's separability is about.

Every linear layer on the path is a `CombinationLoRALinear`; a sample's available modalities pick its combination,
and that combination's adapters are the only ones it uses (MCLA). Missing modalities are zeroed and masked out of
attention, so their features cannot influence the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mculora.dropout import Dropout
from mculora.lora import AdapterRows, CombinationLoRALinear, SharedParts
from mculora.modalities import MODALITIES, Modality, mask_to_index

COMBINATION_BRANCHES = ("with_base", "adapter_only")
COMBINATION_STREAMS = ("residual", "chain")
# `MCULoRA.forward_conditions` on at most this many rows (batch x utterances x conditions) runs as one forward over the
# conditions stacked on the batch: there each layer's cost is its per-call overhead, which one batched call pays once.
# Above it, sharing the conditions' common work wins (`make bench` times both sides of the crossover).
STACKED_ROWS = 112


@dataclass
class BackboneConfig:
    """What every network here shares: its inputs, outputs and backbone size. Defaults are the reference settings
    (hidden 256, depth 4, 2 heads); each method's network config adds its own fields. The trainer holds one without
    the data's fields (its settings) and fills them in when it builds the network; a checkpoint's has them."""

    feature_dims: dict[str, int] = field(
        default_factory=dict, metadata={"help": "input dim per modality name (audio, text, vision)", "from_data": True}
    )
    num_outputs: int = field(default=0, metadata={"help": "number of classes, or 1 for regression", "from_data": True})
    hidden: int = 256
    depth: int = 4
    heads: int = 2
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.feature_dims or self.num_outputs:
            self.check_data()

    def check_data(self) -> None:
        """The data's fields are complete and valid (a network cannot be built otherwise)."""
        missing = {m.value for m in MODALITIES} - set(self.feature_dims)
        if missing:
            raise ValueError(f"feature_dims lacks {sorted(missing)}")
        if any(int(d) <= 0 for d in self.feature_dims.values()):
            raise ValueError(f"feature dims must be positive, got {self.feature_dims}")
        if self.num_outputs < 1:
            raise ValueError("num_outputs must be >= 1")


@dataclass
class MCULoRAConfig(BackboneConfig):
    """Architecture of the MCULoRA network: the backbone's settings plus its adapters'."""

    attn_dropout: float = 0.0
    lora_dropout: float = 0.1
    rank_in: int = field(default=4, metadata={"help": "adapter rank of the input projections"})
    rank_mlp: int = field(default=8, metadata={"help": "adapter rank of the attention blocks' MLPs"})
    rank_fusion: int = field(default=4, metadata={"help": "adapter rank of the fusion projection and the head"})
    combination_branch: str = field(
        default="with_base",
        metadata={
            "help": "with_base: a combination stream layer outputs W x + b + B_k A_k xs (paper-era code); "
            "adapter_only: B_k A_k xs alone (later variant)"
        },
    )
    combination_stream: str = field(
        default="residual",
        metadata={
            "help": "residual: each combination stream layer also passes xs on where the width allows (its adapters "
            "learn); chain: no identity path, as the paper's code (deep combination adapters get no gradient)"
        },
    )
    combination_init_std: float = field(
        default=0.0, metadata={"help": "std of the normal init of combination adapters' B (0: zeros, as LoRA)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.combination_branch not in COMBINATION_BRANCHES:
            raise ValueError(f"combination_branch must be one of {COMBINATION_BRANCHES}")
        if self.combination_stream not in COMBINATION_STREAMS:
            raise ValueError(f"combination_stream must be one of {COMBINATION_STREAMS}")
        if self.combination_init_std < 0:
            raise ValueError("combination_init_std must be >= 0")


@dataclass
class ModelOutput:
    """Everything one forward pass produces. All [B, L, C] terms satisfy
    ``logits == base + shared + combination_term``."""

    logits: torch.Tensor  # [B, L, C]
    base: torch.Tensor  # [B, L, C]: the head's W h + b (counted twice in the with_base branch, as the code does)
    shared: torch.Tensor  # [B, L, C]: the head's shared adapter
    combination_term: torch.Tensor  # [B, L, C]: the head's adapter of the sample's combination
    combination_index: torch.Tensor  # long [B]
    # [B, 3]: per modality, ||combination-specific part|| / ||combination stream||, averaged over the utterances where
    # the modality is present (0 where it is absent): how much the combination adapters changed that modality.
    specific_share: torch.Tensor
    shared_repr: dict[Modality, torch.Tensor]  # [B, L, hidden] per modality (DPFT reads these)
    combination_repr: dict[Modality, torch.Tensor]  # [B, L, hidden] per modality

    def chunk(self, parts: int) -> list[ModelOutput]:
        """The output of ``parts`` equal consecutive blocks of the batch, one `ModelOutput` each."""
        blocks = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, dict):
                pieces = {key: tensor.chunk(parts) for key, tensor in value.items()}
                value = [{key: piece[i] for key, piece in pieces.items()} for i in range(parts)]
            blocks[name] = value if isinstance(value, list) else value.chunk(parts)
        return [ModelOutput(**{name: pieces[i] for name, pieces in blocks.items()}) for i in range(parts)]


class UtteranceAttention(nn.Module):
    """Multi-head self-attention over the utterances of a dialogue; plain q/k/v projections, no output projection."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and not self.training:
            # One utterance: the softmax over its single key is exactly 1, so attention returns the value (zero when
            # the key is masked), bit for bit; the shortcut skips the query, key and score work, as at inference.
            return self.v(x) * key_mask[:, :, None].to(x.dtype)
        return self.attend(x, key_mask)

    def attend(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention of every utterance over the unmasked ones."""
        b, length, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-2, -1) / (dim // self.heads) ** 0.5
        # A finite fill (not -inf) keeps gradients NaN-free when a modality is missing for the whole dialogue.
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(b, length, dim)
        # Rows with no valid key attend to nothing (the reference sets the NaNs of an all-masked softmax to 0).
        return out * key_mask.any(dim=1)[:, None, None].to(out.dtype)


class Stream(NamedTuple):
    """A combination stream: its value and the part of it that the combination adapters contributed."""

    value: torch.Tensor
    specific: torch.Tensor


def linear(config: MCULoRAConfig, in_features: int, out_features: int, rank: int) -> CombinationLoRALinear:
    return CombinationLoRALinear(
        in_features,
        out_features,
        rank,
        config.lora_dropout,
        combination_init_std=config.combination_init_std,
    )


class ModalityEncoderLayer(nn.Module):
    """Attention over utterances, then an MLP whose two linears carry the adapters; the combination stream runs
    only through the MLP's linears (no attention or activation), as in the reference code."""

    def __init__(self, config: MCULoRAConfig):
        super().__init__()
        self.attention = UtteranceAttention(config.hidden, config.heads, config.attn_dropout)
        self.fc1 = linear(config, config.hidden, config.hidden, config.rank_mlp)
        self.fc2 = linear(config, config.hidden, config.hidden, config.rank_mlp)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> tuple[torch.Tensor, SharedParts, SharedParts]:
        """The shared stream through the layer, and the MLP linears' parts (the combination stream's inputs)."""
        attended = self.attention(x, key_mask)
        h1 = self.fc1.shared_parts(attended)
        h2 = self.fc2.shared_parts(self.dropout(F.gelu(h1.shared_stream)))
        return x + attended + self.dropout(h2.shared_stream), h1, h2


class ModalityPass(NamedTuple):
    """One modality's shared stream, with what its combination streams are built from: each adapter layer on the
    way (the input projection, then every layer's two MLP linears) and its routing-independent parts."""

    value: torch.Tensor  # [B, L, hidden]: the shared representation
    key_mask: torch.Tensor  # bool [B, L]: where the modality is present
    linears: list[tuple[CombinationLoRALinear, SharedParts]]


class FusionPass(NamedTuple):
    """The fusion projection's and the head's routing-independent parts, for one set of shared representations."""

    fusion: SharedParts
    head: SharedParts


def keep_mask(utterance_mask, modality_mask, available) -> torch.Tensor:
    """bool [B, L, 3]: which modality of which real utterance a sample may use (its mask, and the data's)."""
    keep = utterance_mask[:, :, None] & modality_mask.to(torch.bool)[:, None, :]
    return keep if available is None else keep & available.to(torch.bool)


def routed_modalities(available: torch.Tensor) -> torch.Tensor:
    """bool [B, 3] from per-utterance availability [B, L, 3]: every modality some utterance of the sample has; a
    sample with none keeps all three (nothing to route, and every row needs a combination)."""
    present = available.any(dim=1)
    return torch.where(present.any(-1, keepdim=True), present, torch.ones_like(present))


class FusionNetwork(nn.Module):
    """What MCULoRA and the late-fusion backbone (`mculora.networks.late_fusion`) share: per-feature standardisation
    of each modality's inputs, part of the checkpoint (identity until the trainer sets training-set statistics); one
    encoder per modality (``in_proj`` and ``layers``); and their parameter counts."""

    def register_input_statistics(self, feature_dims: dict[str, int]) -> None:
        for m in MODALITIES:
            self.register_buffer(f"{m.value}_mean", torch.zeros(feature_dims[m.value]))
            self.register_buffer(f"{m.value}_std", torch.ones(feature_dims[m.value]))

    @torch.no_grad()
    def set_input_statistics(self, statistics: dict[Modality, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Standardise each modality's inputs with training-set (mean, std); near-constant features keep std 1."""
        for m, (mean, std) in statistics.items():
            getattr(self, f"{m.value}_mean").copy_(mean)
            getattr(self, f"{m.value}_std").copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def standardise(self, m: Modality, x: torch.Tensor) -> torch.Tensor:
        return (x - getattr(self, f"{m.value}_mean")) / getattr(self, f"{m.value}_std")

    def modality_parameters(self, m: Modality) -> list[nn.Parameter]:
        """The parameters of one modality's encoder (its input projection and layers): what CGGM modulates."""
        return [*self.in_proj[m.value].parameters(), *self.layers[m.value].parameters()]

    def parameter_counts(self) -> dict[str, int]:
        """Total parameters, those in adapters, and those of one combination's adapters (0 without adapters)."""
        total = sum(p.numel() for p in self.parameters())
        adapters = sum(p.numel() for n, p in self.named_parameters() if ".lora_" in n)
        one = sum(p.numel() for n, p in self.named_parameters() if ".lora_A.atv." in n or ".lora_B.atv." in n)
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"total": total, "trainable": trainable, "adapters": adapters, "per_combination": one}


class MCULoRA(FusionNetwork):
    architecture = "mculora"
    config_class = MCULoRAConfig

    def __init__(self, config: MCULoRAConfig):
        super().__init__()
        config.check_data()
        self.config = config
        fused = config.hidden * len(MODALITIES)
        self.in_proj = nn.ModuleDict(
            {m.value: linear(config, config.feature_dims[m.value], config.hidden, config.rank_in) for m in MODALITIES}
        )
        self.layers = nn.ModuleDict(
            {m.value: nn.ModuleList(ModalityEncoderLayer(config) for _ in range(config.depth)) for m in MODALITIES}
        )
        self.register_input_statistics(config.feature_dims)
        self.fusion = linear(config, fused, fused, config.rank_fusion)
        self.head = linear(config, fused, config.num_outputs, config.rank_fusion)
        self.dropout = Dropout(config.dropout)

    def _advance(self, base: torch.Tensor, combination: torch.Tensor, previous: Stream | None) -> Stream:
        """The combination stream after one layer, from the layer's base output, its combination adapter's output and
        the stream that entered it."""
        carry = (
            previous is not None
            and self.config.combination_stream == "residual"
            and previous.value.shape[-1] == base.shape[-1]
        )
        value, specific = combination, combination
        if self.config.combination_branch == "with_base":
            value = value + base
        if carry:
            value, specific = value + previous.value, specific + previous.specific
        return Stream(value, specific)

    def encode(self, m: Modality, features: torch.Tensor, key_mask: torch.Tensor) -> ModalityPass:
        """Modality ``m``'s shared stream, where ``key_mask`` says which utterances have it."""
        standardised = self.standardise(m, features)
        x_in = standardised * key_mask[:, :, None].to(standardised.dtype)
        parts = self.in_proj[m.value].shared_parts(x_in)
        linears = [(self.in_proj[m.value], parts)]
        x = self.dropout(parts.shared_stream)
        for layer in self.layers[m.value]:
            x, h1, h2 = layer(x, key_mask)
            linears += [(layer.fc1, h1), (layer.fc2, h2)]
        return ModalityPass(x, key_mask, linears)

    def combination_stream(self, encoded: ModalityPass, routes: AdapterRows) -> Stream:
        """The combination stream of an encoded modality: through the same linears, each sample's combination
        adapters, starting from the input projection's dropped-out input."""
        stream = None
        for layer, parts in encoded.linears:
            stream_in = parts.dropped if stream is None else stream.value
            stream = self._advance(parts.base, layer.route(stream_in, routes, parts.base), stream)
        return stream

    def fuse(self, encoded: dict[Modality, ModalityPass]) -> FusionPass:
        """The fusion projection over the modalities' shared representations side by side, and the head's input."""
        h0 = torch.cat([encoded[m].value for m in MODALITIES], dim=-1)
        fusion = self.fusion.shared_parts(h0)
        hidden = self.dropout(F.relu(fusion.shared_stream)) + h0
        return FusionPass(fusion, self.head.shared_parts(hidden))

    def output(
        self,
        encoded: dict[Modality, ModalityPass],
        streams: dict[Modality, Stream],
        fused: FusionPass,
        routes: AdapterRows,
        combination: torch.Tensor,
    ) -> ModelOutput:
        """The logits and their decomposition, from the modalities' passes, their combination streams and the fusion."""
        shares = []
        for m in MODALITIES:
            stream, present = streams[m], encoded[m].key_mask.to(streams[m].value.dtype)
            share = stream.specific.norm(dim=-1) / stream.value.norm(dim=-1).clamp(min=1e-12)
            shares.append((share * present).sum(1) / present.sum(1).clamp(min=1))
        xs_all = Stream(*(torch.cat([getattr(streams[m], f) for m in MODALITIES], dim=-1) for f in Stream._fields))
        fusion = fused.fusion
        xs = self._advance(fusion.base, self.fusion.route(xs_all.value, routes, fusion.base), xs_all)
        head = fused.head
        head_combination = self.head.route(xs.value, routes, head.base)
        # The with_base head's combination branch outputs W h + b + B_k A_k xs, so the logits hold W h + b twice, as
        # in the paper-era code. The second copy is taken out of the branch's output as computed, which keeps trained
        # models' outputs bit for bit.
        base = head.base
        if self.config.combination_branch == "with_base":
            base = head.base + ((head_combination + head.base) - head_combination)
        return ModelOutput(
            logits=base + head.shared + head_combination,
            base=base,
            shared=head.shared,
            combination_term=head_combination,
            combination_index=combination,
            specific_share=torch.stack(shares, dim=1),
            shared_repr={m: encoded[m].value for m in MODALITIES},
            combination_repr={m: stream.value for m, stream in streams.items()},
        )

    def forward(
        self,
        features: dict[Modality, torch.Tensor],
        utterance_mask: torch.Tensor,
        modality_mask: torch.Tensor,
        available: torch.Tensor | None = None,
        combination: torch.Tensor | None = None,
    ) -> ModelOutput:
        """
        Args:
            features: per modality, float [B, L, D_m].
            utterance_mask: bool [B, L], True for real (non-padding) utterances.
            modality_mask: bool [B, 3] in (audio, text, vision) order: the modalities each sample may use. It picks
                the sample's combination adapters.
            available: optional bool [B, L, 3]: per-utterance availability from the data (a missing feature file);
                such entries are zeroed and masked like a missing modality without changing the routing.
            combination: optional long [B] that overrides the routing (DPFT probes every combination's adapters on
                complete inputs; the demo uses it for counterfactuals).
        """
        modality_mask = modality_mask.to(torch.bool)
        if combination is None:
            combination = mask_to_index(modality_mask)
        keep = keep_mask(utterance_mask, modality_mask, available)
        routes = AdapterRows.of(combination)
        encoded = {m: self.encode(m, features[m], keep[:, :, i]) for i, m in enumerate(MODALITIES)}
        streams = {m: self.combination_stream(encoded[m], routes) for m in MODALITIES}
        fused = self.fuse(encoded)
        return self.output(encoded, streams, fused, routes, combination)

    def forward_conditions(
        self,
        features: dict[Modality, torch.Tensor],
        utterance_mask: torch.Tensor,
        modality_masks: torch.Tensor,
        available: torch.Tensor | None = None,
        combinations: Sequence[int] | None = None,
    ) -> list[ModelOutput]:
        """`forward` under several conditions, each applied to the whole batch: the same outputs bit for bit, with
        the work the conditions share done once (inputs of at most `STACKED_ROWS` rows run as one stacked forward
        instead, equal up to float rounding). A modality's shared stream is the same in every condition that has
        the modality (and in every one that lacks it), a combination stream the same wherever its combination and
        its modality's presence are, and the fusion's routing-independent parts the same for the same modalities.
        So the 7 test conditions run each modality's layers twice instead of 7 times, and DPFT's probes (complete
        inputs routed to each combination in turn) run them once. Eval mode only: in training the conditions would
        share their dropout masks.

        Args:
            modality_masks: bool [C, 3]: condition c's available modalities, for every sample.
            combinations: optional, condition c's combination index, overriding the one its mask implies.
        """
        if self.training:
            raise RuntimeError("forward_conditions shares dropout draws between conditions; call it in eval mode")
        batch = utterance_mask.shape[0]
        if batch * utterance_mask.shape[1] * len(modality_masks) <= STACKED_ROWS:
            return self._stacked_conditions(features, utterance_mask, modality_masks, available, combinations)
        encoded, streams, fused, routes, outputs = {}, {}, {}, {}, []
        for c, mask in enumerate(modality_masks.to(torch.bool)):
            present = tuple(mask.tolist())
            k = int(mask_to_index(mask)) if combinations is None else int(combinations[c])
            if k not in routes:
                routes[k] = AdapterRows.of(torch.full((batch,), k, dtype=torch.long, device=utterance_mask.device))
            keep = keep_mask(utterance_mask, mask.expand(batch, -1), available)
            for i, m in enumerate(MODALITIES):
                if (m, present[i]) not in encoded:
                    encoded[m, present[i]] = self.encode(m, features[m], keep[:, :, i])
                if (m, present[i], k) not in streams:
                    streams[m, present[i], k] = self.combination_stream(encoded[m, present[i]], routes[k])
            mine = {m: encoded[m, present[i]] for i, m in enumerate(MODALITIES)}
            if present not in fused:
                fused[present] = self.fuse(mine)
            own_streams = {m: streams[m, present[i], k] for i, m in enumerate(MODALITIES)}
            outputs.append(self.output(mine, own_streams, fused[present], routes[k], routes[k].index))
        return outputs

    def _stacked_conditions(self, features, utterance_mask, modality_masks, available, combinations):
        """`forward_conditions` of a small input as one `forward` over the conditions stacked on the batch: equal up
        to float rounding (several combinations in one batch run as one masked adapter, `mculora.lora`)."""
        conditions, batch = len(modality_masks), utterance_mask.shape[0]
        routing = None if combinations is None else torch.tensor(list(combinations), device=utterance_mask.device)
        out = self(
            {m: f.repeat(conditions, 1, 1) for m, f in features.items()},
            utterance_mask.repeat(conditions, 1),
            modality_masks.to(torch.bool).repeat_interleave(batch, dim=0),
            None if available is None else available.repeat(conditions, 1, 1),
            None if routing is None else routing.repeat_interleave(batch),
        )
        return out.chunk(conditions)
