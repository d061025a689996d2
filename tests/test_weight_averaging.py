"""Stochastic weight averaging in the shared training loop: from epoch k on, what is kept is a running average of
the weights as trained, while DPFT and the log still read the weights as trained."""

import pytest
import torch

import mculora.training.train as train
from mculora.data import load_corpus
from mculora.training.config import parse_args
from mculora.training.methods import build_method

EPOCHS = 4


def _fit(synthetic_iemocap, average_from_epoch: int, monkeypatch) -> tuple[dict, list[dict], list[dict]]:
    """Train briefly with every candidate scoring higher than the one before (so the last one is kept); return the
    kept weights, each epoch's weights as trained, and the log."""
    calls = iter(range(1000))
    monkeypatch.setattr(train, "selection_score", lambda results, task: float(next(calls)))
    argv = ["--dataset", "iemocap4", "--epochs", str(EPOCHS), "--model-hidden", "32", "--model-depth", "1"]
    config = parse_args([*argv, "--average-from-epoch", str(average_from_epoch)])
    corpus = load_corpus("iemocap4", synthetic_iemocap)
    split = corpus.splits(0.1, seed=0)[0]
    train.seed_everything(3)
    method = build_method(config.method, config)
    core = method.build_model({m.value: d for m, d in corpus.feature_dims.items()}, 4)
    val = train.collate_in_batches([corpus.dialogues[n] for n in split.val], 16)
    trained, log = [], []

    def batches(epoch: int):
        return train.collate_in_batches([corpus.dialogues[n] for n in split.train[:64]], 16)

    def record(entry: dict) -> None:  # called after each epoch, before the kept weights are loaded back
        trained.append({k: v.detach().clone() for k, v in core.state_dict().items()})
        log.append(entry)

    train.fit(config, method, core, batches, val, "classification", torch.device("cpu"), train.Workers(), 3, log=record)
    return core.state_dict(), trained, log


@pytest.mark.parametrize("start", [1, 3])
def test_the_kept_weights_are_the_running_average_since_the_start_epoch(synthetic_iemocap, monkeypatch, start):
    kept, trained, log = _fit(synthetic_iemocap, start, monkeypatch)
    assert len(trained) == EPOCHS
    moved = 0
    for name, value in kept.items():
        if not value.is_floating_point():  # counters are the model's own, not averaged
            assert torch.equal(value, trained[-1][name]), name
            continue
        expected = torch.stack([epoch[name] for epoch in trained[start - 1 :]]).mean(0)
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.allclose(value, trained[-1][name])
    assert moved > 0  # the average is not simply the last epoch's weights
    # The log keeps the weights as trained beside the averaged candidate's score.
    assert ["val_score_averaged" in entry for entry in log] == [epoch >= start for epoch in range(1, EPOCHS + 1)]


def test_without_averaging_the_kept_weights_are_an_epochs_own(synthetic_iemocap, monkeypatch):
    kept, trained, log = _fit(synthetic_iemocap, 0, monkeypatch)
    for name, value in kept.items():
        torch.testing.assert_close(value, trained[-1][name], msg=name)
    assert not any("val_score_averaged" in entry for entry in log)


def test_a_negative_start_is_refused():
    with pytest.raises(ValueError, match="average_from_epoch"):
        parse_args(["--average-from-epoch", "-1"])
