"""What the methods that train the late-fusion backbone (`mculora.networks.late_fusion`) share: the backbone's size
from the trainer's ``model`` settings, and the baseline's combination sampling."""

from __future__ import annotations

from dataclasses import fields

from mculora.dpft import CombinationSampler
from mculora.model import BackboneConfig
from mculora.networks.late_fusion import LateFusionBackbone
from mculora.training.methods.base import Method, uniform_combinations


class LateFusionMethod(Method):
    """What the methods on this backbone share: its size from the trainer's ``model`` settings, and the combination
    sampling of the baseline (every combination with probability 1/7), so that a comparison differs only in the
    method."""

    network = LateFusionBackbone

    def network_config(self, feature_dims: dict[str, int], num_outputs: int):
        """The network's config: the trainer's backbone size, the data's dims, and the method's own architecture
        fields from its settings (those of ``network.config_class`` beyond `BackboneConfig`)."""
        backbone = {f.name: getattr(self.config.model, f.name) for f in fields(BackboneConfig)}
        backbone.update(feature_dims=feature_dims, num_outputs=num_outputs)
        own = {f.name for f in fields(self.network.config_class)} - set(backbone)
        return self.network.config_class(**backbone, **{name: getattr(self.settings, name) for name in own})

    def build_model(self, feature_dims: dict[str, int], num_outputs: int) -> LateFusionBackbone:
        return self.network(self.network_config(feature_dims, num_outputs))

    def make_sampler(self) -> CombinationSampler:
        return uniform_combinations()

    @property
    def pretrain_epochs(self) -> int:
        """The two-stage recipe's first stage, for the methods whose settings have one."""
        return getattr(self.settings, "pretrain_epochs", 0)
