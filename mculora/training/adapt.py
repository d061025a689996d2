"""CASP-style test-time adaptation of a trained model to unlabelled target data (Guo et al., AAAI 2025).

    python -m mculora.training.adapt --checkpoint DIR --dataset D --data-root R [--fold 1] --out ADAPTED_DIR

Three steps, none of which reads a target label:

1. **Contrastive adaptation.** Two views of every target batch: as it is, and with one of each sample's present
   modalities dropped (each with equal probability; a single-modality sample keeps it). NT-Xent (SimCLR, τ 0.5)
   between the two views' representations (the concatenated per-modality encodings of each utterance) trains only
   the normalisation parameters. Every ``interval`` epochs the predictions on the target data are stored.
2. **Stable pseudo-labels.** A sample's instability is the mean change of its prediction between stored snapshots
   (total-variation distance of the class probabilities; absolute difference for regression). Its pseudo-label is
   the mean prediction. The ``keep_fraction`` **most stable** samples are kept: the released CASP code keeps the
   least stable ones (``s > q_0.95``), the opposite of what the method intends.
3. **Self-training** on the kept pseudo-labels (cross-entropy, or L1 for regression), same parameters.

*Normalisation parameters.* The networks here normalise in one place, the per-feature standardisation of each
modality's input; its shift and (log-)scale are what CASP's LayerNorm affine parameters are elsewhere. They are
adapted as offsets and folded back into the model's input statistics at the end, so the adapted model is an ordinary
checkpoint of the same architecture.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mculora.data import Batch
from mculora.modalities import MODALITIES
from mculora.model import routed_modalities
from mculora.training.metrics import task_metrics


@dataclass
class AdaptSettings:
    epochs: int = 15  # contrastive epochs (CASP's value)
    interval: int = 3  # store target predictions every this many epochs (CASP's value)
    lr: float = 1e-3
    temperature: float = 0.5  # NT-Xent τ (CASP's value)
    keep_fraction: float = 0.05  # CASP's quantile 0.95, applied the intended way round: the 5 % most stable
    self_train_epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.keep_fraction <= 1:
            raise ValueError("keep_fraction must be in (0, 1]")
        if self.epochs < 2 * self.interval:
            raise ValueError("epochs must allow at least two prediction snapshots (epochs >= 2 * interval)")


class InputOffsets(nn.Module):
    """Per-modality, per-feature shift and log-scale applied before the model's standardisation: adapting them is
    adapting the standardisation's mean (+ shift) and std (x exp(log-scale))."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.shift = nn.ParameterDict({m.value: nn.Parameter(torch.zeros_like(self._mean(m))) for m in MODALITIES})
        self.log_scale = nn.ParameterDict({m.value: nn.Parameter(torch.zeros_like(self._mean(m))) for m in MODALITIES})

    def _mean(self, m) -> torch.Tensor:
        return getattr(self.model, f"{m.value}_mean")

    def adjusted(self, features: dict) -> dict:
        # standardise(x') = (x - mean - shift) / (std * exp(log_scale)) for x' = mean + (x - mean - shift) e^{-ls}
        return {
            m: self._mean(m) + (x - self._mean(m) - self.shift[m.value]) * torch.exp(-self.log_scale[m.value])
            for m, x in features.items()
        }

    def forward(self, batch: Batch, mask: torch.Tensor):
        return self.model(self.adjusted(batch.features), batch.utterance_mask, mask, batch.available)

    @torch.no_grad()
    def fold_into_model(self) -> nn.Module:
        for m in MODALITIES:
            getattr(self.model, f"{m.value}_mean").add_(self.shift[m.value])
            getattr(self.model, f"{m.value}_std").mul_(torch.exp(self.log_scale[m.value]))
        return self.model


def full_mask(batch: Batch) -> torch.Tensor:
    """Every modality the data has for some utterance of the sample (at least one)."""
    return routed_modalities(batch.available & batch.utterance_mask[:, :, None])


def drop_one(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each sample loses one of its present modalities, chosen uniformly; a single-modality sample keeps it."""
    scores = torch.rand(mask.shape, generator=generator).to(mask.device).masked_fill(~mask, -1.0)
    dropped = F.one_hot(scores.argmax(-1), mask.shape[-1]).bool()
    return torch.where(mask.sum(-1, keepdim=True) > 1, mask & ~dropped, mask)


def representation(output, batch: Batch) -> torch.Tensor:
    """[N, 3 * hidden]: the concatenated modality encodings of every real utterance."""
    return torch.cat([output.shared_repr[m] for m in MODALITIES], dim=-1)[batch.utterance_mask]


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each row of ``a`` should pick its own row of ``b`` (and vice versa) among all 2N - 1 others."""
    z = F.normalize(torch.cat([a, b]), dim=-1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    count = len(a)
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(z.device)
    return F.cross_entropy(similarity, targets)


@torch.no_grad()
def predictions(wrapper: InputOffsets, batches: list[Batch], task: str) -> torch.Tensor:
    """Class probabilities [N, C] (or scores [N, 1]) of every real utterance, all modalities present."""
    wrapper.eval()
    outputs = []
    for batch in batches:
        logits = wrapper(batch, full_mask(batch)).logits[batch.utterance_mask].float()
        outputs.append(logits.softmax(-1) if task == "classification" else logits)
    return torch.cat(outputs)


def stable_pseudo_labels(snapshots: torch.Tensor, task: str, keep_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """snapshots [K, N, C] -> (indices of the kept samples, their pseudo-labels): the ``keep_fraction`` with the
    smallest mean change between consecutive snapshots."""
    change = (snapshots[1:] - snapshots[:-1]).abs().sum(-1)  # [K - 1, N]
    instability = change.mean(0) / (2 if task == "classification" else 1)
    count = max(1, round(keep_fraction * snapshots.shape[1]))
    kept = instability.argsort(stable=True)[:count]
    mean = snapshots.mean(0)[kept]
    return kept, (mean.argmax(-1) if task == "classification" else mean.squeeze(-1))


def adapt(model: nn.Module, batches: list[Batch], task: str, settings: AdaptSettings) -> tuple[nn.Module, dict]:
    """The adapted copy of ``model`` (eval mode) and a report; ``model`` itself is left unchanged."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    wrapper = InputOffsets(copy.deepcopy(model))
    wrapper.model.requires_grad_(False)
    optimizer = torch.optim.Adam([*wrapper.shift.parameters(), *wrapper.log_scale.parameters()], lr=settings.lr)
    snapshots, losses = [], []
    for epoch in range(1, settings.epochs + 1):
        wrapper.train()
        for index in torch.randperm(len(batches), generator=generator).tolist():
            batch = batches[index]
            mask = full_mask(batch)
            original = representation(wrapper(batch, mask), batch)
            augmented = representation(wrapper(batch, drop_one(mask, generator)), batch)
            loss = nt_xent(original, augmented, settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if epoch % settings.interval == 0:
            snapshots.append(predictions(wrapper, batches, task))
    kept, pseudo = stable_pseudo_labels(torch.stack(snapshots), task, settings.keep_fraction)
    # Self-training on the kept utterances only (a mask over each batch's real utterances).
    offsets = np.cumsum([0] + [int(b.utterance_mask.sum()) for b in batches])
    chosen = torch.zeros(int(offsets[-1]), dtype=torch.bool)
    chosen[kept] = True
    targets = torch.zeros(int(offsets[-1]), dtype=pseudo.dtype)
    targets[kept] = pseudo
    for _ in range(settings.self_train_epochs):
        wrapper.train()
        for index in torch.randperm(len(batches), generator=generator).tolist():
            batch = batches[index]
            rows = chosen[offsets[index] : offsets[index + 1]]
            if not rows.any():
                continue
            labels = torch.zeros_like(batch.labels)
            labels[batch.utterance_mask] = targets[offsets[index] : offsets[index + 1]].to(labels.dtype)
            use = batch.utterance_mask.clone()
            use[batch.utterance_mask] = rows
            outputs = wrapper(batch, full_mask(batch)).logits[use]
            if task == "classification":
                loss = F.cross_entropy(outputs, labels[use])
            else:  # CASP self-trains regression with L1
                loss = (outputs.squeeze(-1) - labels[use].float()).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    adapted = wrapper.fold_into_model().eval()
    report = {
        "settings": asdict(settings),
        "target_utterances": int(offsets[-1]),
        "pseudo_labelled": int(len(kept)),
        "contrastive_loss_first_last": [losses[0], losses[-1]],
    }
    return adapted, report


@torch.no_grad()
def evaluate(model: nn.Module, batches: list[Batch], task: str) -> dict[str, float]:
    """Metrics with every modality the target data has (labels used here only, never by `adapt`)."""
    model.eval()
    labels, outputs = [], []
    for batch in batches:
        logits = model(batch.features, batch.utterance_mask, full_mask(batch), batch.available).logits
        labels.append(batch.labels[batch.utterance_mask])
        outputs.append(logits[batch.utterance_mask].float())
    return task_metrics(task, torch.cat(labels).numpy(), torch.cat(outputs).numpy())


def main(argv: list[str] | None = None) -> None:
    from mculora.checkpoint import CheckpointConfig, load_checkpoint, save_checkpoint
    from mculora.data import load_corpus
    from mculora.encoders import copy_encoder_weights
    from mculora.training.train import collate_in_batches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="the trained model (source domain)")
    parser.add_argument("--dataset", required=True, help="the target data set (any the trainer reads)")
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--fold", type=int, default=1, help="adapt to (and report on) this split's test part")
    parser.add_argument("--out", required=True, type=Path, help="where the adapted checkpoint goes")
    for name, default in asdict(AdaptSettings()).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    args = parser.parse_args(argv)
    settings = AdaptSettings(**{k: getattr(args, k) for k in asdict(AdaptSettings())})
    model, config = load_checkpoint(args.checkpoint)
    corpus = load_corpus(args.dataset, args.data_root)
    split = corpus.splits(0.0, seed=0)[args.fold - 1]
    batches = collate_in_batches([corpus.dialogues[n] for n in split.test], 16)
    before = evaluate(model, batches, config.task)
    adapted, report = adapt(model, batches, config.task, settings)
    report.update(before=before, after=evaluate(adapted, batches, config.task))
    training = {**config.training, "casp": report}
    save_checkpoint(args.out, adapted, CheckpointConfig(**{**vars(config), "training": training}))
    copy_encoder_weights(args.checkpoint, args.out)
    (args.out / "adaptation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"before": before, "after": report["after"]}, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
