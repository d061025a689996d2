"""MPLMM (`mculora.networks.mplmm`) as a training method.

Two-stage recipe (``--mplmm-pretrain-epochs N``): the backbone is first trained on complete samples only (the
paper's pre-training), then frozen except its input projections and head, and the prompts and generators are trained
with missing modalities. With 0 (the default) everything trains together from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

from mculora.networks.mplmm import MPLMMNet, MPLMMPrompts
from mculora.training.methods.base import register
from mculora.training.methods.late_fusion import LateFusionMethod


@dataclass
class MPLMMSettings(MPLMMPrompts):
    """The trainer's ``--mplmm-*`` settings: the prompts' sizes and the two-stage recipe."""

    pretrain_epochs: int = 0  # > 0: the two-stage recipe (complete-data pre-training, then prompts)


@register
class MPLMMMethod(LateFusionMethod):
    name = "mplmm"
    network = MPLMMNet
    settings_class = MPLMMSettings

    def freeze_after_pretraining(self, model: MPLMMNet) -> None:
        """The paper's second stage: the pre-trained backbone is frozen except its input projections and head."""
        model.requires_grad_(False)
        for parameter in [*model.prompt_parameters(), *model.in_proj.parameters(), *model.head.parameters()]:
            parameter.requires_grad_(True)
