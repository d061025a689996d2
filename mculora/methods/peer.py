"""What the peer methods built on the late-fusion backbone share: its size from the trainer's `ModelSettings`, and
the combination sampling of the baseline (every combination with probability 1/7), so that a comparison differs only
in the method."""

from __future__ import annotations

from mculora.dpft import CombinationSampler
from mculora.methods.base import Method, uniform_combinations


class PeerMethod(Method):
    def backbone_settings(self, feature_dims: dict[str, int], num_outputs: int) -> dict:
        model = self.config.model
        return {
            "feature_dims": feature_dims,
            "num_outputs": num_outputs,
            "hidden": model.hidden,
            "depth": model.depth,
            "heads": model.heads,
            "dropout": model.dropout,
        }

    def make_sampler(self) -> CombinationSampler:
        return uniform_combinations()
