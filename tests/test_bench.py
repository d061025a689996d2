"""The benchmark suite's dense reference formulation computes exactly what the routed adapters compute, so that its
ratios compare the same function (`benchmarks/suite.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import suite  # noqa: E402

from mculora.lora import CombinationLoRALinear  # noqa: E402


def test_the_dense_formulation_equals_the_routed_one():
    torch.manual_seed(0)
    layer = CombinationLoRALinear(8, 5, rank=2, dropout=0.0).eval()
    for name, parameter in layer.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter)
    x, xs = torch.randn(9, 3, 8), torch.randn(9, 3, 8)
    combination = torch.tensor([0, 1, 2, 3, 4, 5, 6, -1, 3])  # every combination, mixed, and one routed nowhere
    parts = layer.shared_parts(x)
    for stream in (parts.dropped, xs):
        routed = layer.route(stream, combination, parts.base)
        with suite.dense_adapters():
            dense = layer.route(stream, combination, parts.base)
        assert torch.allclose(routed, dense, atol=1e-6)
        assert torch.equal(dense[7], torch.zeros(3, 5))
        assert not torch.allclose(routed[0], routed[1])  # the adapters differ per row
    assert CombinationLoRALinear.route is not suite.dense_route  # restored after the block


def test_the_serving_comparison_times_full_requests_three_ways(predictor, monkeypatch):
    """The three ways of serving a full request are timed, the torch-thread way really hands the whole call over,
    and the served batch limit is restored afterwards."""
    handed_over = []
    run = predictor.torch_thread.run
    monkeypatch.setattr(predictor.torch_thread, "run", lambda fn, *a, **k: handed_over.append(fn) or run(fn, *a, **k))
    served_batch = predictor.torch_thread.max_batch
    result = suite.serving_section(predictor, rounds=1, per_round=2)
    ways = ("batched", "one_at_a_time", "all_on_torch_thread")
    assert all(result[f"{way}_per_s"] > 0 for way in ways)
    assert result["batching_gain"] == result["batched_per_s"] / result["one_at_a_time_per_s"]
    assert handed_over.count(predictor.predict) == 4  # the third way's 2 warm-up and 2 timed calls
    assert predictor.torch_thread.max_batch == served_batch
