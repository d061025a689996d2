"""The interface every training method implements, so the trainer, evaluation and checkpoints serve them all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from mculora.dpft import CombinationSampler, DPFTConfig


def task_loss(task: str, logits: torch.Tensor, labels: torch.Tensor, utterance_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid utterances: cross-entropy (classification) or squared error (regression)."""
    logits, labels = logits[utterance_mask], labels[utterance_mask]
    if task == "classification":
        return F.cross_entropy(logits, labels.long())
    return F.mse_loss(logits.squeeze(-1), labels.float())


def uniform_combinations() -> CombinationSampler:
    """Every modality combination with probability 1/7 (keep probability 0.5 per modality, the empty set redrawn)."""
    return CombinationSampler(DPFTConfig(mode="off", keep_probability=0.5))


class Method(ABC):
    name: ClassVar[str]  # --method NAME
    # The network it trains, as checkpoints save and load it: a module with an ``architecture`` name and a
    # ``config_class`` (its architecture's dataclass, saved in config.json); None for a method that trains another
    # method's network.
    network: ClassVar[type[torch.nn.Module] | None]
    # Its own settings, if any: a dataclass that becomes TrainConfig's section NAME (flags --NAME-FIELD, a NAME:
    # mapping in YAML). The method reads them as ``self.settings``.
    settings_class: ClassVar[type | None] = None
    # > 0: train this many epochs on complete samples first, then `freeze_after_pretraining` (two-stage recipes)
    pretrain_epochs: int = 0

    def __init__(self, config):
        self.config = config  # a `mculora.training.config.TrainConfig`
        self.settings = config.method_settings.get(self.name)

    @abstractmethod
    def build_model(self, feature_dims: dict[str, int], num_outputs: int) -> torch.nn.Module:
        """The network; its forward follows `mculora.model.MCULoRA.forward` and returns a `ModelOutput`."""

    @abstractmethod
    def make_sampler(self) -> CombinationSampler:
        """Draws each training sample's modality combination."""

    def loss(self, output, batch, task: str) -> torch.Tensor:
        return task_loss(task, output.logits, batch.labels, batch.utterance_mask)

    def pretraining_parameters(self, model) -> list[torch.nn.Parameter]:
        """What the pre-training stage trains (see `pretrain_epochs`): by default everything."""
        return list(model.parameters())

    def freeze_after_pretraining(self, model) -> None:
        """Which parameters keep training after the pre-training stage (see `pretrain_epochs`)."""

    def after_backward(self, model, output, batch, routing, task: str) -> None:
        """Hook between a training step's backward pass and its optimiser step (e.g. gradient modulation)."""

    def before_training(self, model, sampler: CombinationSampler, val_batches: Sequence, device) -> None:
        """Hook before the first epoch (e.g. a reference measurement)."""

    def after_epoch(
        self, model, sampler: CombinationSampler, val_batches: Sequence, device, val_results: dict[str, dict], task: str
    ) -> None:
        """Hook after each epoch, with the epoch's validation metrics per condition."""


METHODS: dict[str, type[Method]] = {}


def register(method: type[Method]) -> type[Method]:
    """Class decorator: make ``method`` available as ``--method method.name`` (and its settings and network known)."""
    if method.name in METHODS:
        raise ValueError(f"two methods are named {method.name!r}")
    METHODS[method.name] = method
    return method
