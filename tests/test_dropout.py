"""`mculora.dropout.Dropout` must be torch's dropout, bit for bit: it is a faster way to draw the same mask, and every
trained checkpoint depends on the random stream staying what it was."""

import pytest
import torch
from torch import nn

from mculora.dropout import Dropout


def run(module: nn.Module, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = x.clone().requires_grad_(True)
    out = module(x)
    out.backward(torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape))
    return out.detach(), x.grad, torch.get_rng_state()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_mask_output_gradient_and_rng_match_torch(p: float, dtype: torch.dtype) -> None:
    x = torch.randn(4, 7, 33, generator=torch.Generator().manual_seed(0), dtype=dtype)
    ours, theirs = run(Dropout(p), x, seed=3), run(nn.Dropout(p), x, seed=3)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    assert 0 < (ours[0] == 0).float().mean() < 1  # a mask was drawn: some kept, some dropped


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_edge_rates_and_eval_mode_are_torch_dropout(p: float) -> None:
    x = torch.randn(3, 5)
    for a, b in zip(run(Dropout(p), x, 1), run(nn.Dropout(p), x, 1), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(Dropout(0.5).eval()(x), x)


def test_consecutive_draws_stay_in_step_with_torch() -> None:
    """A model draws many masks in a row: the generator must be left exactly where torch's dropout leaves it."""
    x = torch.randn(2, 9, 16)
    torch.manual_seed(7)
    ours = [Dropout(0.3)(x) for _ in range(5)]
    torch.manual_seed(7)
    theirs = [nn.Dropout(0.3)(x) for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
