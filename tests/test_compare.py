"""`python -m mculora.training.compare`: every method on identical splits, one table, and the missing-rate curves."""

import json
import time

import pytest
import torch

from mculora.data import collate_dialogues, load_corpus
from mculora.training.compare import MISSING_RATES, main, random_missing


def test_random_missing_keeps_one_modality_per_utterance_and_routes_by_what_is_left(synthetic_iemocap):
    corpus = load_corpus("iemocap4", synthetic_iemocap)
    batch = collate_dialogues(list(corpus.dialogues.values())[:8])
    generator = torch.Generator().manual_seed(0)
    for rate in (0.0, 0.5, 0.9):
        mask, available = random_missing(batch, rate, generator)
        real = batch.utterance_mask & batch.available.any(-1)
        assert (available.any(-1) == real).all()  # no real utterance loses everything
        assert not (available & ~batch.available).any()  # nothing the data lacks appears
        assert (mask == available.any(1)).all()  # a dialogue is routed by the modalities it still has
    _, none_dropped = random_missing(batch, 0.0, generator)
    assert (none_dropped == (batch.available & batch.utterance_mask[:, :, None])).all()
    _, heavy = random_missing(batch, 0.7, torch.Generator().manual_seed(1))
    share = heavy[batch.utterance_mask].float().mean()
    assert 0.3 < share < 0.55  # about 0.3 kept, plus the rescued ones


@pytest.mark.slow
def test_comparison_writes_one_table_and_curves_for_every_method(synthetic_iemocap, tmp_path):
    out = tmp_path / "compare"
    argv = ["--dataset", "iemocap4", "--data-root", str(synthetic_iemocap), "--out", str(out), "--folds", "1"]
    argv += ["--methods", "mcu-lora", "wander", "--seeds", "1", "2", "--epochs", "2", "--model-hidden", "32"]
    started = time.perf_counter()
    main([*argv, "--model-depth", "1"])
    elapsed = time.perf_counter() - started
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison["methods"]) == ["mcu-lora", "wander"] and comparison["metric"] == "accuracy"
    for entry in comparison["methods"].values():
        assert set(entry["conditions"]) == {"a", "t", "v", "at", "av", "tv", "atv"}
        assert 0 < entry["parameters"]["trainable"] <= entry["parameters"]["total"]
        # 2 seeds x 2 epochs of each method fit in the run's wall time.
        assert 0 < 4 * entry["seconds_per_epoch"] < elapsed
    # MCULoRA carries an adapter per combination on every linear layer: more parameters than Wander at this size.
    methods = comparison["methods"]
    assert methods["mcu-lora"]["parameters"]["total"] > methods["wander"]["parameters"]["total"]
    for curve in comparison["missing_rate_curves"].values():
        assert [f"{r:.1f}" for r in MISSING_RATES] == [k for k in curve if not k.endswith("_std")]
    table = (out / "comparison.md").read_text()
    assert "| mcu-lora |" in table and "| wander |" in table and "trainable / total" in table
    assert (out / "missing_rates.png").stat().st_size > 5000
    assert (out / "mcu-lora" / "results.json").is_file() and (out / "wander" / "checkpoints").is_dir()


def test_unknown_methods_fail_clearly(synthetic_iemocap, tmp_path):
    with pytest.raises(SystemExit, match="unknown methods"):
        main(["--dataset", "iemocap4", "--data-root", str(synthetic_iemocap), "--out", str(tmp_path), "--methods", "x"])
