"""The interface every training method implements, so the trainer, evaluation and checkpoints serve them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from mculora.dpft import CombinationSampler


def task_loss(task: str, logits: torch.Tensor, labels: torch.Tensor, utterance_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid utterances: cross-entropy (classification) or squared error (regression)."""
    logits, labels = logits[utterance_mask], labels[utterance_mask]
    if task == "classification":
        return F.cross_entropy(logits, labels.long())
    return F.mse_loss(logits.squeeze(-1), labels.float())


class Method(ABC):
    name: ClassVar[str]

    def __init__(self, config):
        self.config = config  # a `mculora.config.TrainConfig`

    @abstractmethod
    def build_model(self, feature_dims: dict[str, int], num_outputs: int) -> torch.nn.Module:
        """The network; its forward follows `mculora.model.MCULoRA.forward` and returns a `ModelOutput`."""

    @abstractmethod
    def make_sampler(self) -> CombinationSampler:
        """Draws each training sample's modality combination."""

    def loss(self, output, batch, task: str) -> torch.Tensor:
        return task_loss(task, output.logits, batch.labels, batch.utterance_mask)

    def before_training(self, model, sampler: CombinationSampler, val_batches: Sequence, device) -> None:
        """Hook before the first epoch (e.g. a reference measurement)."""

    def after_epoch(
        self, model, sampler: CombinationSampler, val_batches: Sequence, device, val_results: dict[str, dict], task: str
    ) -> None:
        """Hook after each epoch, with the epoch's validation metrics per condition."""
