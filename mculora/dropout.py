"""Dropout whose mask is cheaper to draw on the CPU, with exactly the numbers torch's own dropout draws."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` that draws its CPU mask with ``torch.rand`` instead of ``bernoulli_``: the same mask, the same
    random numbers taken from the generator, the same output and gradient, bit for bit (`tests/test_dropout.py`).

    Why: torch's CPU dropout fills its mask with ``bernoulli_(1 - p)``, which sets up a Bernoulli distribution for
    every element; the masks were a quarter of a fusion-model training step. That kernel keeps an element when one
    uniform double from the generator's 64-bit stream is below ``1 - p``, and ``torch.rand(dtype=float64)`` draws the
    same doubles in the same order, a third faster. Elsewhere (eval mode, p of 0 or 1, in place, other devices,
    whose fused kernels are fast already) it is ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x  # what nn.Dropout returns in eval mode, without its call into torch (the fusion has ~60 of these)
        if self.inplace or not 0 < self.p < 1 or x.device.type != "cpu":
            return super().forward(x)
        keep = 1 - self.p
        # torch's own sequence: a 0/1 mask in the input's dtype, divided by the keep rate, times the input.
        noise = (torch.rand(x.shape, dtype=torch.float64) < keep).to(x.dtype)
        return x * noise.div_(keep)
