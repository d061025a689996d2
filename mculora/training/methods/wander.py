"""Wander (`mculora.networks.wander`) as a training method.

Two-stage recipe (``--wander-pretrain-epochs N``): the backbone is trained on complete samples first, then frozen;
the adapter and the head train with missing modalities (the paper's setting: an adapter on a frozen model).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mculora.networks.wander import WanderAdapterSize, WanderNet
from mculora.training.methods.base import register
from mculora.training.methods.late_fusion import LateFusionMethod


@dataclass
class WanderSettings(WanderAdapterSize):
    """The trainer's ``--wander-*`` settings: the adapter's ranks and the two-stage recipe."""

    pretrain_epochs: int = 0  # > 0: the two-stage recipe (frozen pre-trained backbone, trained adapter)


@register
class WanderMethod(LateFusionMethod):
    name = "wander"
    network = WanderNet
    settings_class = WanderSettings

    def pretraining_parameters(self, model: WanderNet) -> list[nn.Parameter]:
        """The backbone alone: the adapter comes after pre-training."""
        adapter = {id(p) for p in model.adapter.parameters()}
        return [p for p in model.parameters() if id(p) not in adapter]

    def freeze_after_pretraining(self, model: WanderNet) -> None:
        """An adapter on a frozen model: only the adapter and the head keep training."""
        model.requires_grad_(False)
        for parameter in [*model.adapter.parameters(), *model.head.parameters()]:
            parameter.requires_grad_(True)
