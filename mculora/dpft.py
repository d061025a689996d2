"""DPFT: dynamic parameter fine-tuning, i.e. how often each modality combination is trained.

During training every sample gets a combination of modalities drawn by a `CombinationSampler`. DPFT moves the
sampling distribution between epochs:

* ``separability`` (paper-era method): each modality is kept with probability p_m. After an epoch, on the
  validation split with complete inputs, S_k = mean over k's modalities of D(softmax(x_m), softmax(xs_m[k])),
  the divergence between the shared and the combination-specific representation. D is the reference code's form,
  (KL(m||p) + KL(m||q)) / 2 with m the mixture, by default, or the textbook Jensen-Shannon divergence
  (KL(p||m) + KL(q||m)) / 2. Combinations are ranked by how
  little S_k changed since the reference point (|S_k - S_k(ref)|, least first) and, rank by rank, every modality of the
  combination gets ``+eta * 2**-rank`` and every other modality ``-eta * 2**-rank``, clipped to [low, high]. So the
  combinations whose decoupled representation moved least get more training exposure.
* ``accuracy`` (later variant): a categorical distribution over the 7 combinations from the change of each
  combination's validation accuracy: q_k = 0.8 (1 + tan(s_k - 1)), s_k = min(1.5, (sum(delta) - delta_k) / sum(delta)).
* ``off``: a fixed keep probability (ablation, and the baseline's sampler).

Both signals are measured on a validation split, never on the test split (the reference code used the test set).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from mculora.modalities import COMBINATIONS, MODALITIES, NUM_COMBINATIONS, index_to_mask, mask_table, mask_to_index

DPFT_MODES = ("separability", "accuracy", "off")
REFERENCES = ("initial", "first_epoch", "previous")
DIVERGENCES = ("reference", "js")


@dataclass
class DPFTConfig:
    mode: str = field(default="separability", metadata={"help": "separability | accuracy | off"})
    eta: float = field(default=0.003, metadata={"help": "step size of the keep-probability update"})
    clip_low: float = 0.4
    clip_high: float = 0.6
    reference: str = field(
        default="initial",
        metadata={
            "help": "the S_k that later epochs are compared with. initial: measured before training; first_epoch: "
            "the first measurement, after epoch 1 (the reference code); previous: the last epoch's"
        },
    )
    divergence: str = field(
        default="reference",
        metadata={
            "help": "reference: (KL(m||p) + KL(m||q)) / 2, the reference code's form; js: (KL(p||m) + KL(q||m)) / 2"
        },
    )
    keep_probability: float = field(default=0.5, metadata={"help": "initial (or, with mode off, fixed) p_m"})

    def __post_init__(self) -> None:
        if self.mode not in DPFT_MODES:
            raise ValueError(f"DPFT mode must be one of {DPFT_MODES}, got {self.mode!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"DPFT reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"DPFT divergence must be one of {DIVERGENCES}, got {self.divergence!r}")
        if not 0 < self.clip_low <= self.clip_high < 1:
            raise ValueError("DPFT clip bounds must satisfy 0 < low <= high < 1")
        if not 0 < self.keep_probability < 1:
            raise ValueError("keep_probability must be in (0, 1)")


class ModalityDraw(NamedTuple):
    """What a training batch may use: per-sample modalities, optional per-utterance availability (ANDed with the
    data's) and an optional routing override (-1: no combination adapter)."""

    modality_mask: torch.Tensor  # bool [B, 3]
    available: torch.Tensor | None = None  # bool [B, L, 3]
    combination: torch.Tensor | None = None  # long [B]

    @classmethod
    def of(cls, combination: torch.Tensor) -> ModalityDraw:
        """Each sample uses exactly its combination's modalities and adapters."""
        return cls(index_to_mask(combination))


class CombinationSampler:
    """Draws each training sample's modality combination and carries DPFT's state between epochs."""

    def __init__(self, config: DPFTConfig):
        self.config = config
        self.keep = torch.full((len(MODALITIES),), config.keep_probability, dtype=torch.float64)
        self.weights = torch.full((NUM_COMBINATIONS,), 1.0 / NUM_COMBINATIONS, dtype=torch.float64)
        self._reference: torch.Tensor | None = None

    def sample(
        self, n: int, generator: torch.Generator | None = None, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Combination indices, long [n]. The all-missing case is redrawn: it is never tested and has no adapter.
        ``allowed`` (bool [3]) limits the draws to combinations of those modalities, for data that lacks some."""
        allowed = torch.ones(len(MODALITIES), dtype=torch.bool) if allowed is None else allowed.to(torch.bool).cpu()
        if not allowed.any():
            raise ValueError("at least one modality must be allowed")
        if self.config.mode == "accuracy":
            within = ~(mask_table() & ~allowed).any(dim=1)
            return torch.multinomial(self.weights * within, n, replacement=True, generator=generator)
        mask = torch.zeros(n, len(MODALITIES), dtype=torch.bool)
        empty = torch.ones(n, dtype=torch.bool)
        while empty.any():
            draw = torch.rand(int(empty.sum()), len(MODALITIES), generator=generator, dtype=torch.float64) < self.keep
            mask[empty] = draw & allowed
            empty = ~mask.any(dim=1)
        return mask_to_index(mask)

    def sample_reference(self, speakers: torch.Tensor, generator: torch.Generator | None = None) -> ModalityDraw:
        """The reference code's draw for a whole batch: one availability per speaker role (the host, speaker 0, and
        the guest, every other speaker), each modality kept with p_m, the all-missing draw allowed. Every sample is
        routed to the combination of the first dialogue's first speaker (-1 when that draw is empty), as in the
        reference code, whose routing index comes from utterance 0 of dialogue 0."""
        draws = torch.rand(2, len(MODALITIES), generator=generator, dtype=torch.float64) < self.keep
        role = (speakers != 0).long().cpu()  # [B, L]
        first = draws[int(role[0, 0])]
        k = int(mask_to_index(first)) if first.any() else -1
        size = speakers.shape[0]
        return ModalityDraw(
            modality_mask=draws.any(dim=0).expand(size, -1),
            available=draws[role],
            combination=torch.full((size,), k, dtype=torch.long),
        )

    def observe_separability(self, separability: torch.Tensor) -> None:
        """Update p_m from S_k, a [7] tensor of validation JS divergences (see `measure_separability`)."""
        if self.config.mode != "separability":
            return
        separability = separability.to(torch.float64).cpu()
        if self._reference is None:
            self._reference = separability
            return
        change = (separability - self._reference).abs()
        signs = mask_table().to(torch.float64) * 2 - 1  # +1 for the combination's modalities, -1 otherwise
        for rank, k in enumerate(torch.argsort(change, stable=True).tolist()):
            self.keep = (self.keep + signs[k] * self.config.eta * 0.5**rank).clamp(
                self.config.clip_low, self.config.clip_high
            )
        if self.config.reference == "previous":
            self._reference = separability

    def observe_accuracy(self, accuracy: torch.Tensor) -> None:
        """Update the combination weights from each combination's validation accuracy, a [7] tensor."""
        if self.config.mode != "accuracy":
            return
        accuracy = accuracy.to(torch.float64).cpu()
        if self._reference is None:
            self._reference = accuracy
            return
        delta = accuracy - self._reference
        self._reference = accuracy
        total = float(delta.sum())
        preference = (total - delta) / total if total != 0 else torch.zeros_like(delta)
        preference = preference.clamp(max=1.5)
        weights = (0.8 * (1 + torch.tan(preference - 1))).clamp(min=0)
        self.weights = weights / weights.sum() if weights.sum() > 0 else torch.full_like(weights, 1 / NUM_COMBINATIONS)

    def state(self) -> dict:
        """What the training log records each epoch."""
        if self.config.mode == "accuracy":
            return {"combination_weights": dict(zip(COMBINATIONS, self.weights.tolist(), strict=True))}
        return {"keep_probability": {m.value: round(p, 6) for m, p in zip(MODALITIES, self.keep.tolist(), strict=True)}}


def divergence(p_logits: torch.Tensor, q_logits: torch.Tensor, form: str = "reference") -> torch.Tensor:
    """Divergence between softmax(p) and softmax(q) over the last dim; shape = input shape[:-1]. With m their
    mixture, ``js`` is the Jensen-Shannon divergence (KL(p||m) + KL(q||m)) / 2 (symmetric, at most log 2) and
    ``reference`` the reference code's (KL(m||p) + KL(m||q)) / 2 (symmetric, unbounded)."""
    log_p, log_q = p_logits.log_softmax(-1), q_logits.log_softmax(-1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2)
    if form == "js":
        return 0.5 * ((log_p.exp() * (log_p - log_m)).sum(-1) + (log_q.exp() * (log_q - log_m)).sum(-1))
    if form == "reference":
        return 0.5 * (log_m.exp() * (2 * log_m - log_p - log_q)).sum(-1)
    raise ValueError(f"unknown divergence {form!r}; expected one of {DIVERGENCES}")


@torch.no_grad()
def probe_combinations(model: torch.nn.Module, batches: Iterable, device: torch.device):
    """For each batch, the model's outputs on the complete inputs routed to each combination k = 0..6 in turn:
    yields (batch, [output_0, ..., output_6]), in eval mode. One pass per batch (`MCULoRA.forward_conditions`): the
    shared streams are the same under every routing, so only the combination streams are computed seven times."""
    was_training = model.training
    model.eval()
    complete = torch.ones(NUM_COMBINATIONS, len(MODALITIES), dtype=torch.bool, device=device)
    for batch in batches:
        batch = batch.to(device)
        routings = range(NUM_COMBINATIONS)
        yield batch, model.forward_conditions(batch.features, batch.utterance_mask, complete, batch.available, routings)
    model.train(was_training)


def combination_divergence(output, k: int, form: str = "reference") -> torch.Tensor:
    """[B, L] divergence between the shared and the combination-k representation of an output routed to k,
    averaged over k's modalities."""
    members = [m for i, m in enumerate(MODALITIES) if mask_table()[k, i]]
    return sum(divergence(output.shared_repr[m], output.combination_repr[m], form) for m in members) / len(members)


def measure_separability(
    model: torch.nn.Module, batches: Iterable, device: torch.device, form: str = "reference"
) -> torch.Tensor:
    """S_k for k = 0..6 on complete inputs: the mean divergence between each modality's shared representation
    and its combination-k representation, averaged over k's modalities and all valid utterances."""
    totals = torch.zeros(NUM_COMBINATIONS, dtype=torch.float64)
    count = 0
    for batch, outputs in probe_combinations(model, batches, device):
        valid = batch.utterance_mask
        count += int(valid.sum())
        for k, out in enumerate(outputs):
            totals[k] += float(combination_divergence(out, k, form)[valid].sum())
    return totals / max(count, 1)
