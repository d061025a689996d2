"""CASP-style test-time adaptation: its pieces, and a real adaptation of a trained model on the synthetic set."""

import json

import pytest
import torch

from mculora.checkpoint import load_checkpoint
from mculora.modalities import MODALITIES
from mculora.training.adapt import InputOffsets, drop_one, main, nt_xent, stable_pseudo_labels
from mculora.training.train import main as train_main


def test_the_most_stable_samples_are_kept():
    # Four snapshots of three-class probabilities for four samples; sample 2 never changes, sample 0 barely,
    # samples 1 and 3 swing between classes.
    steady, swing = torch.tensor([0.8, 0.1, 0.1]), torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
    snapshots = torch.stack(
        [
            torch.stack([steady + 0.01 * (k % 2) * torch.tensor([1, -1, 0]), swing[k % 2], steady, swing[(k + 1) % 2]])
            for k in range(4)
        ]
    )
    kept, labels = stable_pseudo_labels(snapshots, "classification", keep_fraction=0.5)
    assert kept.tolist() == [2, 0] and labels.tolist() == [0, 0]
    scores = torch.tensor([[[0.5], [2.0]], [[0.5], [-1.0]], [[0.6], [2.0]]])  # regression: sample 0 is stable
    kept, labels = stable_pseudo_labels(scores, "regression", keep_fraction=0.5)
    assert kept.tolist() == [0] and labels.tolist() == pytest.approx([1.6 / 3])


def test_augmentation_drops_exactly_one_present_modality():
    masks = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]] * 50, dtype=torch.bool)
    dropped = drop_one(masks, torch.Generator().manual_seed(0))
    assert ((masks & ~dropped) == (masks ^ dropped)).all()  # nothing is added
    assert (dropped.sum(-1) == torch.tensor([2, 1, 1] * 50)).all()
    assert dropped[0::3].float().mean(0).min() > 0.2  # each of three modalities gets dropped


def test_nt_xent_prefers_matching_views():
    a = torch.randn(8, 5)
    assert nt_xent(a, a + 0.01 * torch.randn(8, 5), 0.5) < nt_xent(a, torch.randn(8, 5), 0.5)


@pytest.mark.slow
def test_adaptation_runs_end_to_end_and_changes_only_the_input_statistics(trainer_args, synthetic_iemocap, tmp_path):
    train_main(trainer_args("--model-hidden", "32", "--model-depth", "1", epochs=3))
    source = tmp_path / "run" / "checkpoints" / "seed66-fold1"
    out = tmp_path / "adapted"
    settings = ["--epochs", "4", "--interval", "2", "--keep-fraction", "0.3", "--self-train-epochs", "2"]
    main(
        [
            "--checkpoint",
            str(source),
            "--dataset",
            "iemocap4",
            "--data-root",
            str(synthetic_iemocap),
            "--out",
            str(out),
            *settings,
        ]
    )
    report = json.loads((out / "adaptation.json").read_text())
    assert report["pseudo_labelled"] == round(0.3 * report["target_utterances"])
    assert set(report["before"]) == set(report["after"]) and 0 <= report["after"]["accuracy"] <= 1
    before, _ = load_checkpoint(source)
    after, config = load_checkpoint(out)
    assert config.training["casp"]["settings"]["keep_fraction"] == 0.3
    changed = {n for n, t in after.state_dict().items() if not torch.equal(t, before.state_dict()[n])}
    assert changed and all(n.endswith(("_mean", "_std")) for n in changed), changed


def test_offsets_start_as_the_identity_and_fold_into_the_statistics():
    class Statistics(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for m in MODALITIES:
                self.register_buffer(f"{m.value}_mean", torch.randn(3))
                self.register_buffer(f"{m.value}_std", torch.rand(3) + 0.5)

        def standardise(self, m, x):
            return (x - getattr(self, f"{m.value}_mean")) / getattr(self, f"{m.value}_std")

    torch.manual_seed(0)
    wrapper = InputOffsets(Statistics())
    features = {m: torch.randn(2, 1, 3) for m in MODALITIES}
    for m, x in wrapper.adjusted(features).items():
        torch.testing.assert_close(x, features[m])
    with torch.no_grad():
        for m in MODALITIES:
            wrapper.shift[m.value].uniform_(-1, 1)
            wrapper.log_scale[m.value].uniform_(-0.5, 0.5)
    adjusted = {m: wrapper.model.standardise(m, x) for m, x in wrapper.adjusted(features).items()}
    folded = wrapper.fold_into_model()
    for m in MODALITIES:  # the folded statistics standardise raw features exactly as the offsets did
        torch.testing.assert_close(folded.standardise(m, features[m]), adjusted[m])
