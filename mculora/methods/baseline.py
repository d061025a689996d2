"""The reference point: MCULoRA's backbone without any adapters, trained on all 7 combinations uniformly."""

from __future__ import annotations

from dataclasses import asdict

from mculora.dpft import CombinationSampler
from mculora.methods.base import Method, uniform_combinations
from mculora.model import MCULoRA, MCULoRAConfig


class BaselineMethod(Method):
    name = "baseline"

    def build_model(self, feature_dims: dict[str, int], num_outputs: int) -> MCULoRA:
        settings = asdict(self.config.model)
        return MCULoRA(MCULoRAConfig(feature_dims=feature_dims, num_outputs=num_outputs, adapters=False, **settings))

    def make_sampler(self) -> CombinationSampler:
        return uniform_combinations()
