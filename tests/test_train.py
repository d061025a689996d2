"""Real (short) training runs on the synthetic benchmark data through the command-line entry point."""

import json

import pytest
import torch

from mculora.checkpoint import load_checkpoint
from mculora.data import collate_dialogues, load_corpus
from mculora.training.evaluate import CONDITIONS, evaluate_conditions
from mculora.training.train import main

SMALL = ["--model-hidden", "32", "--model-depth", "1"]


@pytest.mark.slow
def test_mcu_lora_learns_and_fusion_beats_single_modalities(trainer_args, synthetic_iemocap, tmp_path, capsys):
    out = tmp_path / "run"
    main(trainer_args(epochs=20))
    table = capsys.readouterr().out
    assert "| atv |" in table and "| average |" in table

    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "iemocap4"
    assert set(results["conditions"]) == set(CONDITIONS)
    for scores in [*results["conditions"].values(), results["average"]]:
        for metric in ("accuracy", "ua", "f1"):
            assert 0.0 <= scores[metric] <= 1.0 and f"{metric}_std" in scores
    accuracy = {c: results["conditions"][c]["accuracy"] for c in CONDITIONS}
    # Chance is 0.25. Audio and vision each carry one binary factor of the class, so together they are needed.
    assert accuracy["atv"] >= 0.85, accuracy
    assert accuracy["atv"] >= max(accuracy["a"], accuracy["t"], accuracy["v"]), accuracy
    assert accuracy["av"] > max(accuracy["a"], accuracy["v"]) + 0.2, accuracy

    # DPFT's keep probabilities are logged each epoch and stay within the clip bounds.
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert len(log) == 20
    assert all(0.4 <= p <= 0.6 for entry in log for p in entry["keep_probability"].values())

    # The saved checkpoint reproduces the reported test numbers exactly.
    model, config = load_checkpoint(out / "checkpoints" / "seed66-fold1")
    corpus = load_corpus("iemocap4", synthetic_iemocap)
    split = corpus.splits(0.1, seed=0)[0]
    batches = [
        collate_dialogues([corpus.dialogues[n] for n in split.test[i : i + 16]]) for i in range(0, len(split.test), 16)
    ]
    again = evaluate_conditions(model, batches, config.task, torch.device("cpu"))
    saved = json.loads((out / "checkpoints" / "seed66-fold1" / "metrics.json").read_text())["test"]
    for c in CONDITIONS:
        assert again[c]["accuracy"] == pytest.approx(results["conditions"][c]["accuracy"], abs=1e-9)
        assert saved[c] == pytest.approx(again[c], abs=1e-9)  # what the Hub model card will report


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--method", "baseline"], ["--dpft-mode", "accuracy"], ["--dpft-mode", "off"]])
def test_methods_and_dpft_variants_run(trainer_args, tmp_path, extra):
    """Each variant does what its flag says: the baseline has no adapters; DPFT off keeps every modality's keep
    probability at 0.5, the accuracy mode re-weights the combinations; and every variant learns (chance is 0.25)."""
    out = tmp_path / "run"
    # A higher learning rate than the default lets the small network learn the synthetic classes in 6 epochs.
    main(trainer_args("--seeds", "1", "2", *SMALL, "--lr", "0.003", *extra, folds="2", epochs=6))
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [1, 2] and results["splits"] == ["fold2"]
    assert results["average"]["accuracy_std"] > 0.0  # two seeds, two different runs
    assert results["conditions"]["atv"]["accuracy"] > 0.8, results["conditions"]["atv"]
    if extra == ["--method", "baseline"]:
        assert results["parameters"]["adapters"] == 0 and results["parameters"]["total"] > 0
        return
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert results["parameters"]["adapters"] > 0 and len(log) == 2 * 6  # seeds x epochs
    if extra == ["--dpft-mode", "off"]:  # the modalities' keep probabilities stay where they start
        assert {p for entry in log for p in entry["keep_probability"].values()} == {0.5}
    else:  # the accuracy mode re-weights the combinations it draws, away from uniform
        weights = [list(entry["combination_weights"].values()) for entry in log]
        assert all(sum(w) == pytest.approx(1.0) for w in weights)
        assert any(abs(p - 1 / 7) > 1e-3 for w in weights for p in w)


@pytest.mark.slow
def test_regression_benchmark_reports_regression_metrics(synthetic_mosi, tmp_path):
    """The regression metrics are reported, and the model learns: its predictions correlate with the labels and its
    MAE is below that of always predicting the test labels' mean."""
    import numpy as np

    out = tmp_path / "run"
    args = ["--dataset", "mosi", "--data-root", str(synthetic_mosi), "--epochs", "6", "--lr", "0.003"]
    main([*args, "--out", str(out), *SMALL])
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "regression" and results["splits"] == ["given"]
    for metric in ("acc2", "f1", "mae", "corr", "mae_nonzero", "corr_nonzero"):
        assert metric in results["average"] and f"{metric}_std" in results["average"]
    corpus = load_corpus("mosi", synthetic_mosi)
    labels = np.concatenate([corpus.dialogues[name].labels for name in corpus.splits(0.1, seed=0)[0].test])
    baseline_mae = float(np.abs(labels - labels.mean()).mean())
    atv = results["conditions"]["atv"]
    assert atv["corr"] > 0.3 and atv["mae"] < baseline_mae, (atv, baseline_mae)


def test_bad_arguments_fail_clearly(trainer_args):
    with pytest.raises(SystemExit, match="folds 1..5"):
        main(trainer_args(folds="9"))
    with pytest.raises(SystemExit, match="--data-root is required"):
        main(["--dataset", "iemocap4"])
    with pytest.raises(ValueError, match="unknown method"):
        main(trainer_args("--method", "magic"))
