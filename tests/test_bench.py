"""The benchmark suite's dense reference formulation computes exactly what the routed adapters compute, so that its
ratios compare the same function (`benchmarks/suite.py`)."""

from __future__ import annotations

import sys
import time
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
    handed_over, batch_limits = [], []
    run, predict = predictor.torch_thread.run, predictor.predict

    def limited(**inputs):
        batch_limits.append(predictor.torch_thread.max_batch)
        return predict(**inputs)

    monkeypatch.setattr(predictor.torch_thread, "run", lambda fn, *a, **k: handed_over.append(fn) or run(fn, *a, **k))
    monkeypatch.setattr(predictor, "predict", limited)
    served_batch = predictor.torch_thread.max_batch
    started = time.perf_counter()
    result = suite.serving_section(predictor, rounds=1, per_round=2)
    elapsed = time.perf_counter() - started
    # Each way's 2 timed requests took part of the section's wall time, so its rate is at least 2 / that time.
    for way in ("batched", "one_at_a_time", "all_on_torch_thread"):
        assert 2 / elapsed <= result[f"{way}_per_s"] < float("inf"), way
    # The third way hands the whole call over: its warm-up and 2 timed calls.
    assert len(handed_over) == result["threads"] + 2 and all(fn is predictor.predict for fn in handed_over)
    # The served way ran under the served batch limit, the other two one request at a time.
    threads = result["threads"]
    assert batch_limits == [served_batch] * (threads + 2) + [1] * 2 * (threads + 2), batch_limits
    assert predictor.torch_thread.max_batch == served_batch


def test_the_clip_contention_section_times_predictions_idle_and_while_the_clip_scores(predictor, demo_checkpoint):
    import clip_contention

    result = clip_contention.measure(predictor, demo_checkpoint, seconds=6.0, calls=3)
    assert (
        result["predict_calls_under_clip"] >= 1 and 0 < result["predict_idle_p50_ms"] <= result["predict_idle_p95_ms"]
    )
    assert result["p95_ratio"] == result["predict_under_clip_p95_ms"] / result["predict_idle_p95_ms"]
    # The clip ran while the predictions were timed: its wall time covers them.
    assert result["clip_wall_s"] * 1000 >= result["predict_under_clip_p50_ms"]
    assert abs(result["clip_realtime_factor"] * result["clip_wall_s"] - 6.0) < 0.1
