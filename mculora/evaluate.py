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
from mculora.metrics import PRIMARY_METRIC, task_metrics
from mculora.modalities import combination_index, index_to_mask

# Reporting order of the conditions: single modalities, pairs, all three.
CONDITIONS: tuple[str, ...] = ("a", "t", "v", "at", "av", "tv", "atv")


@torch.no_grad()
def predict_condition(
    model: torch.nn.Module, batches: Iterable[Batch], condition: str, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Labels [N] and outputs [N, C] of every valid utterance with only ``condition``'s modalities."""
    was_training = model.training
    model.eval()
    mask = index_to_mask(combination_index(condition)).to(device)
    labels, outputs = [], []
    for batch in batches:
        batch = batch.to(device)
        out = model(batch.features, batch.utterance_mask, mask.expand(batch.batch_size, -1), batch.available)
        labels.append(batch.labels[batch.utterance_mask].cpu())
        outputs.append(out.logits[batch.utterance_mask].float().cpu())
    model.train(was_training)
    return torch.cat(labels).numpy(), torch.cat(outputs).numpy()


def evaluate_conditions(
    model: torch.nn.Module,
    batches: Sequence[Batch],
    task: str,
    device: torch.device,
    conditions: Sequence[str] = CONDITIONS,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Metrics per condition (``progress`` shows a bar over the conditions, for final test evaluations)."""
    chosen = tqdm(conditions, desc="evaluating", leave=False) if progress else conditions
    return {c: task_metrics(task, *predict_condition(model, batches, c, device)) for c in chosen}


def selection_score(per_condition: dict[str, dict[str, float]], task: str) -> float:
    """Model-selection criterion of the reference protocol, (1.2 * m_atv + sum of the other six) / 7, on the
    primary metric; computed on the validation split here (the reference selected on test). With fewer conditions
    the largest one plays the part of atv."""
    metric = PRIMARY_METRIC[task]
    full = max(per_condition, key=len)
    others = sum(scores[metric] for c, scores in per_condition.items() if c != full)
    return (1.2 * per_condition[full][metric] + others) / len(per_condition)
