"""The default-checkpoint recipe on a tiny subset of the real data, end to end."""

import json

import pytest

from mculora.checkpoint import load_checkpoint
from mculora.evaluate import CONDITIONS
from mculora.predictor import Predictor
from mculora.recipes.default import main as recipe


@pytest.mark.slow
def test_tiny_recipe_runs_end_to_end(shared_data, tmp_path):
    out = tmp_path / "out"
    recipe(["--tiny", "--data-root", str(shared_data), "--work", str(tmp_path / "work"), "--out", str(out)])
    for name in ("model.safetensors", "config.json", "metrics.json", "README.md", "confusion_matrices.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["paired_test"]) == set(CONDITIONS) == set(metrics["iemocap4_subset"])
    assert {"text/goemotions", "audio/ravdess", "vision/fer2013"} <= set(metrics["unimodal_test"])
    assert set(metrics["ravdess_au"]["conditions"]) == {"a", "v", "av"}
    assert set(metrics["calibration"]) == set(CONDITIONS)
    # A handful of validation pairs fits no meaningful temperature; the full recipe's are checked on the shipped model.
    assert all(r["temperature"] > 0 and 0 <= r["ece_after"] <= 1 for r in metrics["calibration"].values())
    card = (out / "README.md").read_text()
    assert (
        "ECE before" in card and "| atv |" in card and "synthetic" in card and "Not for decisions about people" in card
    )
    _, au_config = load_checkpoint(out / "ravdess_au")
    assert au_config.encoders["profile"] == "ravdess-au"
    _, config = load_checkpoint(out)
    assert config.temperatures == {c: metrics["calibration"][c]["temperature"] for c in CONDITIONS}
    predictor = Predictor.from_pretrained(out, device="cpu")
    assert predictor.predict(text="I am so happy!").label in predictor.labels
