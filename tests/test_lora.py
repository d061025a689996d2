import pytest
import torch

from mculora.lora import CombinationLoRALinear
from mculora.modalities import COMBINATIONS


def _layer(rank=4):
    torch.manual_seed(0)
    return CombinationLoRALinear(12, 6, rank, dropout=0.0)


def _parts(layer, x, combination, xs=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(base, shared, combination) outputs as the model takes them: `shared_parts`, then `route` on the combination
    stream's input (the shared stream's dropped-out input when a stream starts at this layer)."""
    shared = layer.shared_parts(x)
    return shared.base, shared.shared, layer.route(shared.dropped if xs is None else xs, combination, shared.base)


def test_fresh_adapters_leave_the_base_output_unchanged():
    layer = _layer()
    x = torch.randn(5, 3, 12)
    base, shared, combination = _parts(layer, x, torch.tensor([0, 1, 4, 5, 6]))
    assert torch.equal(base + shared, layer.base(x))
    assert torch.count_nonzero(combination) == 0
    # A is random, B is zero: the adapter is live (gets gradients) yet adds nothing.
    assert all(layer.lora_A[n].weight.abs().sum() > 0 for n in layer.lora_A)
    assert all(torch.count_nonzero(layer.lora_B[n].weight) == 0 for n in layer.lora_B)


@pytest.mark.parametrize("grad", [True, False], ids=["training (per combination)", "inference (masked)"])
def test_mixed_combination_batch_equals_per_sample_runs(grad):
    layer = _layer()
    for b in layer.lora_B.values():
        torch.nn.init.normal_(b.weight)
    x, xs = torch.randn(6, 2, 12), torch.randn(6, 2, 12)
    combination = torch.tensor([3, 0, 3, 6, 2, 0])
    with torch.set_grad_enabled(grad):
        mixed = _parts(layer, x, combination, xs)
    for i in range(6):
        single = _parts(layer, x[i : i + 1], combination[i : i + 1], xs[i : i + 1])
        for a, b in zip(mixed, single, strict=True):
            torch.testing.assert_close(a[i : i + 1], b)
        k = COMBINATIONS[int(combination[i])]
        expected = xs[i] @ layer.lora_A[k].weight.T @ layer.lora_B[k].weight.T
        torch.testing.assert_close(mixed[2][i], expected)


def test_only_the_batch_combinations_get_gradients():
    layer = _layer()
    for b in layer.lora_B.values():
        torch.nn.init.normal_(b.weight)
    sum(_parts(layer, torch.randn(4, 12), torch.tensor([4, 4, 6, 6]))).sum().backward()
    used = {name for name in layer.lora_B if layer.lora_B[name].weight.grad is not None}
    assert used == {"shared", "a", "v"}


def test_rank_zero_is_a_plain_linear_layer():
    layer = _layer(rank=0)
    x = torch.randn(3, 12)
    base, shared, combination = _parts(layer, x, torch.tensor([0, 1, 2]))
    assert not layer.has_adapters
    assert torch.equal(base, layer.base(x))
    assert torch.count_nonzero(shared) == 0 and torch.count_nonzero(combination) == 0
    assert sum(p.numel() for p in layer.parameters()) == 12 * 6 + 6


def test_samples_without_a_combination_get_no_adapter_in_a_mixed_batch():
    layer = _layer()
    for b in layer.lora_B.values():
        torch.nn.init.normal_(b.weight)
    x = torch.randn(4, 12)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            combination = _parts(layer, x, torch.tensor([-1, 2, -1, 5]))[2]
        assert torch.count_nonzero(combination[[0, 2]]) == 0 and torch.count_nonzero(combination[[1, 3]])
