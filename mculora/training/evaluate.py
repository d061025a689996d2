"""Evaluation under the 7 fixed test conditions {a, t, v, at, av, tv, atv}.

A condition removes the same modalities from every test sample (zeroed, masked, and routed to the condition's
adapters), as in the benchmark protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from mculora.data import Batch
from mculora.modalities import combination_index, index_to_mask
from mculora.training.metrics import PRIMARY_METRIC, task_metrics

# Reporting order of the conditions: single modalities, pairs, all three.
CONDITIONS: tuple[str, ...] = ("a", "t", "v", "at", "av", "tv", "atv")


def outputs_under(model: torch.nn.Module, batch: Batch, masks: torch.Tensor) -> list:
    """The model's outputs on ``batch`` under each modality mask (bool [C, 3], one per condition), in eval mode:
    in one pass that shares the conditions' common work where the network offers it (`MCULoRA.forward_conditions`),
    else one forward per condition."""
    shared_pass = getattr(model, "forward_conditions", None)
    if shared_pass is not None:
        return shared_pass(batch.features, batch.utterance_mask, masks, batch.available)
    return [
        model(batch.features, batch.utterance_mask, mask.expand(batch.batch_size, -1), batch.available)
        for mask in masks
    ]


@torch.no_grad()
def predict_conditions(
    model: torch.nn.Module, batches: Iterable[Batch], conditions: Sequence[str], device: torch.device
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per condition, labels [N] and outputs [N, C] of every valid utterance with only that condition's modalities."""
    was_training = model.training
    model.eval()
    masks = index_to_mask([combination_index(c) for c in conditions]).to(device)
    labels, outputs = [], {c: [] for c in conditions}
    for batch in batches:
        batch = batch.to(device)
        labels.append(batch.labels[batch.utterance_mask].cpu())
        for condition, out in zip(conditions, outputs_under(model, batch, masks), strict=True):
            outputs[condition].append(out.logits[batch.utterance_mask].float().cpu())
    model.train(was_training)
    truth = torch.cat(labels).numpy()
    return {c: (truth, torch.cat(outputs[c]).numpy()) for c in conditions}


def evaluate_conditions(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    task: str,
    device: torch.device,
    conditions: Sequence[str] = CONDITIONS,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Metrics per condition (``progress`` shows a bar over the batches, for final test evaluations)."""
    predictions = predict_conditions(
        model, tqdm(batches, desc="evaluating", leave=False, disable=not progress), conditions, device
    )
    return {c: task_metrics(task, *predictions[c]) for c in conditions}


def selection_score(per_condition: dict[str, dict[str, float]], task: str) -> float:
    """Model-selection criterion of the reference protocol, (1.2 * m_atv + sum of the other six) / 7, on the
    primary metric; computed on the validation split here (the reference selected on test). With fewer conditions
    the largest one plays the part of atv."""
    metric = PRIMARY_METRIC[task]
    full = max(per_condition, key=len)
    others = sum(scores[metric] for c, scores in per_condition.items() if c != full)
    return (1.2 * per_condition[full][metric] + others) / len(per_condition)


def disagreement_report(predictions: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Does a fused pair follow the right member or the louder one? ``predictions``: condition -> (labels, logits)
    on the same samples under every condition. For each two-modality condition, over the samples where exactly one
    of its modalities alone predicts the label: how often the pair predicts the right member's label, and how often
    the wrong member's."""
    report = {}
    for pair in (c for c in predictions if len(c) == 2 and all(m in predictions for m in c)):
        labels, fused = predictions[pair][0], predictions[pair][1].argmax(1)
        first, second = (predictions[m][1].argmax(1) for m in pair)
        split = (first == labels) != (second == labels)
        right = np.where(first == labels, first, second)[split]
        wrong = np.where(first == labels, second, first)[split]
        report[pair] = {
            "samples": int(split.sum()),
            "follows_right": float((fused[split] == right).mean()) if split.any() else float("nan"),
            "follows_wrong": float((fused[split] == wrong).mean()) if split.any() else float("nan"),
        }
    return report
