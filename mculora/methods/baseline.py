"""The reference point: MCULoRA's backbone without any adapters, trained on all 7 combinations uniformly."""

from __future__ import annotations

from dataclasses import asdict

from mculora.dpft import CombinationSampler, DPFTConfig
from mculora.methods.base import Method
from mculora.model import MCULoRA, MCULoRAConfig


class BaselineMethod(Method):
    name = "baseline"

    def build_model(self, feature_dims: dict[str, int], num_outputs: int) -> MCULoRA:
        settings = asdict(self.config.model)
        return MCULoRA(MCULoRAConfig(feature_dims=feature_dims, num_outputs=num_outputs, adapters=False, **settings))

    def make_sampler(self) -> CombinationSampler:
        # Keep probability 0.5 per modality with the empty set redrawn = every combination with probability 1/7.
        return CombinationSampler(DPFTConfig(mode="off", keep_probability=0.5))
