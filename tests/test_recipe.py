"""The default-checkpoint recipe on a tiny subset of the real data, end to end: MCULoRA, a peer method, and the
corpus exported for the trainer and the comparison."""

import csv
import json

import numpy as np
import pytest

from mculora.checkpoint import load_checkpoint
from mculora.recipes.default import main as recipe
from mculora.serving.predictor import Predictor
from mculora.training.evaluate import CONDITIONS


def test_the_recipe_flags_take_their_fields_types(monkeypatch):
    import mculora.recipes.default as default

    seen = []
    monkeypatch.setattr(default, "run", seen.append)
    recipe(["--fusion-seed", "7", "--epochs", "3", "--feature-noise", "0.25", "--out", "elsewhere"])
    config = seen[0]
    assert (config.fusion_seed, config.fusion_training_seed, config.seed) == (7, 7, 66)
    assert (config.epochs, config.feature_noise, str(config.out), config.device) == (3, 0.25, "elsewhere", None)
    recipe([])
    assert seen[1].fusion_seed is None and seen[1].fusion_training_seed == seen[1].seed


@pytest.fixture(scope="module")
def tiny_run(shared_data, tmp_path_factory):
    """The tiny recipe's feature cache (work) and checkpoint (out), shared by the tests of what builds on them; with
    session training and weight averaging on, so that their paths and their card lines are exercised."""
    root = tmp_path_factory.mktemp("recipe")
    work, out = root / "work", root / "checkpoints" / "default"
    options = ["--session-share", "0.5", "--fold-epoch-scale", "1.0", "--fusion-seed", "5", "--average-from-epoch", "1"]
    recipe(["--tiny", "--data-root", str(shared_data), "--work", str(work), "--out", str(out), *options])
    return work, out


@pytest.mark.slow
def test_tiny_recipe_runs_end_to_end(tiny_run):
    _, out = tiny_run
    for name in ("model.safetensors", "config.json", "metrics.json", "README.md", "confusion_matrices.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["paired_test"]) == set(CONDITIONS) == set(metrics["iemocap4_subset"])
    assert {"text/goemotions", "audio/ravdess", "vision/fer2013"} <= set(metrics["unimodal_test"])
    assert set(metrics["ravdess_au"]["conditions"]) == {"a", "v", "av"}
    assert set(metrics["calibration"]) == set(CONDITIONS)
    # A handful of validation pairs fits no meaningful temperature; the full recipe's are checked on the shipped model.
    assert all(r["temperature"] > 0 and 0 <= r["ece_after"] <= 1 for r in metrics["calibration"].values())
    # Cross-fitting: each fold's networks learned from fewer training items than the served ones, and the two folds
    # together hold out every training item once.
    fitting = metrics["cross_fitting"]
    assert fitting["folds"] == len(metrics["folds"]) == 2
    for network, count in (("face_net", "train_images"), ("speech_net", "train_clips"), ("text_net", "train_texts")):
        held = [metrics[network][count] - fold[network][count] for fold in metrics["folds"]]
        assert all(h > 0 for h in held) and sum(held) == metrics[network][count], (network, held)
    assert {f"fold{k}/{m}" for k in (1, 2) for m in ("audio", "text", "vision")} == set(fitting["stitches"])
    assert set(fitting["networks"]) == {"audio", "text", "vision"} and set(fitting["fusion"]) == {
        "train_pairs_accuracy",
        "val_pairs_accuracy",
    }
    assert set(CONDITIONS) | {"text/goemotions", "audio/emodb", "vision/fer2013"} <= set(metrics["collapse"])
    assert set(metrics["disagreement"]) == {"at", "av", "tv"}
    # The served fusion on speech from the corpus each leave-one-corpus-out network never heard.
    assert set(metrics["unseen_corpus"]) == {"ravdess->emodb", "emodb->ravdess"}
    for direction in metrics["unseen_corpus"].values():
        assert set(direction["conditions"]) == set(CONDITIONS) and direction["stitch"]["items"] > 0
        assert all(0 <= c["ece"] <= 1 for c in direction["conditions"].values())
        assert set(direction["voice_session"]) == set(CONDITIONS)
    # Calibration of test voices moved by a session of their speaker, under the same temperatures.
    assert set(metrics["calibration_voice_session"]) == set(CONDITIONS)
    assert metrics["training"]["recipe"]["session_share"] == "0.5"
    assert list(metrics["speech_transfer"]) == [
        "ravdess->emodb, 3 augmented copies",
        "emodb->ravdess, 3 augmented copies",
    ]
    card = (out / "README.md").read_text()
    assert (
        "ECE before" in card and "| atv |" in card and "synthetic" in card and "Not for decisions about people" in card
    )
    assert "Cross-fitted features" in card and "Collapse check" in card and "corpus it never heard" in card
    assert "voices with a session" in card and "with a session: accuracy / ECE / top class" in card
    assert f"the average of epochs 1 to {metrics['training']['best_epoch']} of 2" in card
    # The person reference beside the weights, and what it does for the unseen speakers (two in a tiny run).
    person = metrics["person_adaptation"]
    assert person["speech"]["people"] == ["ravdess-actor-19", "ravdess-actor-20"]
    assert set(person["paired_calibration"]["conditions"]["session"]) == {"a", "at", "av", "atv"}
    assert (out / "person_reference.safetensors").is_file() and "Reading one person" in card
    _, au_config = load_checkpoint(out / "ravdess_au")
    assert au_config.encoders["profile"] == "ravdess-au"
    _, config = load_checkpoint(out)
    assert config.temperatures == {c: metrics["calibration"][c]["temperature"] for c in CONDITIONS}
    assert config.training["seed"] == 5 and metrics["training"]["recipe"]["fusion_seed"] == "5"
    predictor = Predictor.from_pretrained(out, device="cpu")
    assert predictor.predict(text="I am so happy!").label in predictor.labels


@pytest.mark.slow
def test_the_recipe_trains_a_peer_whose_card_sets_it_beside_mculora(shared_data, tiny_run):
    work, out = tiny_run
    peer = out.parent / "mplmm"
    recipe(["--tiny", "--data-root", str(shared_data), "--work", str(work), "--method", "mplmm", "--out", str(peer)])
    _, config = load_checkpoint(peer)
    assert config.method == "mplmm" and config.architecture == "mplmm" and config.dataset == "ekman7-paired"
    card = (peer / "README.md").read_text()
    assert "# mculora MPLMM checkpoint" in card and "Against MCULoRA" in card and "Adapter health" not in card
    assert "Adapter health" in (out / "README.md").read_text()
    predictor = Predictor.from_pretrained(out, device="cpu", compare_with=[peer])
    assert predictor.predict(text="I am so happy!", method="mplmm").method == "mplmm"


@pytest.mark.slow
def test_the_real_corpus_exported_for_the_trainer_and_the_comparison(shared_data, tiny_run, tmp_path):
    from mculora.data import load_corpus
    from mculora.recipes.paired_corpus import main as export
    from mculora.training.compare import main as compare

    work, out = tiny_run
    corpus = tmp_path / "ekman7-paired"
    export(
        ["--tiny", "--data-root", str(shared_data), "--work", str(work), "--out", str(corpus), "--train-per-label", "5"]
    )
    loaded = load_corpus("ekman7-paired", corpus)
    assert (len(loaded.given_train), len(loaded.given_val), len(loaded.given_test)) == (35, 42, 42)  # 7 labels
    spec = json.loads((corpus / "dataset.json").read_text())
    assert spec["encoders"] == json.loads((out / "config.json").read_text())["encoders"]  # the demo's features
    from mculora.recipes.default import recipe_items
    from mculora.recipes.recipe_config import RecipeConfig

    labels = {item.id: item.label for item in recipe_items(RecipeConfig(data_root=shared_data, tiny=True))}
    for pair in csv.DictReader((corpus / "pairs.csv").open()):
        # Every pair joins three items of its own label. Validation and test pairs carry the served encoders'
        # features; training pairs those of the fold networks that held the item out, stitched, never the served
        # networks' own (which learned from the item).
        assert {labels[pair[m]] for m in ("audio", "text", "vision")} == {pair["label"]}
        for m in ("audio", "text", "vision"):
            folder = spec["feature_folders"][m]
            exported = np.load(corpus / "features" / folder / f"{pair['id']}.npy")
            served = work / "features" / "served" / "features" / folder / f"{pair[m]}.npy"
            if pair["split"] != "train":
                assert np.array_equal(exported, np.load(served))
            else:
                assert list(work.glob(f"features/fold*/features/*/{pair[m]}.npy")), pair
                assert not served.is_file() or not np.array_equal(exported, np.load(served))
    dialogue = loaded.dialogues["test-00000"]
    assert all(dialogue.available[m].all() for m in dialogue.available)
    runs = tmp_path / "compare"
    settings = ["--dataset", "ekman7-paired", "--data-root", str(corpus), "--standardize", "true"]
    settings += ["--epochs", "1", "--batch-size", "16", "--model-hidden", "16", "--model-depth", "1", "--seeds", "1"]
    compare([*settings, "--methods", "mcu-lora", "mplmm", "--out", str(runs)])
    comparison = json.loads((runs / "comparison.json").read_text())
    assert list(comparison["methods"]) == ["mcu-lora", "mplmm"] and comparison["dataset"] == "ekman7-paired"
