"""MCULoRA: combination-aware adapters (MCLA) trained with DPFT-adjusted combination sampling."""

from __future__ import annotations

from dataclasses import replace

import torch

from mculora.dpft import CombinationSampler, measure_separability
from mculora.modalities import COMBINATIONS
from mculora.model import MCULoRA
from mculora.training.methods.base import Method, register
from mculora.training.metrics import PRIMARY_METRIC


@register
class MCULoRAMethod(Method):
    name = "mcu-lora"
    network = MCULoRA

    def build_model(self, feature_dims: dict[str, int], num_outputs: int) -> MCULoRA:
        return MCULoRA(replace(self.config.model, feature_dims=feature_dims, num_outputs=num_outputs))

    def make_sampler(self) -> CombinationSampler:
        return CombinationSampler(self.config.dpft)

    def before_training(self, model, sampler, val_batches, device) -> None:
        # With the reference code's reference point, the first measurement comes after epoch 1.
        if self.config.dpft.mode == "separability" and self.config.dpft.reference != "first_epoch":
            sampler.observe_separability(measure_separability(model, val_batches, device, self.config.dpft.divergence))

    def after_epoch(self, model, sampler, val_batches, device, val_results, task) -> None:
        if self.config.dpft.mode == "separability":
            sampler.observe_separability(measure_separability(model, val_batches, device, self.config.dpft.divergence))
        elif self.config.dpft.mode == "accuracy":
            metric = PRIMARY_METRIC[task]
            sampler.observe_accuracy(torch.tensor([val_results[name][metric] for name in COMBINATIONS]))
