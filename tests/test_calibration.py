"""Temperature scaling and the expected calibration error, on data whose right answer is known."""

import json
import shutil

import numpy as np
import pytest

from mculora.checkpoint import CheckpointError, read_checkpoint_config
from mculora.serving.demo import probability_note
from mculora.serving.predictor import Predictor
from mculora.training.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood, softmax


def sampled(scale: float, n: int = 20000, classes: int = 7, seed: int = 0):
    """Labels drawn from softmax(z), returned with logits scale * z: a model over-confident by a factor ``scale``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, classes))
    p = softmax(z)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return scale * z, labels


def test_ece_by_hand():
    # Two bins used: confidence 0.9 (2 samples, 1 right) and 0.6 (2 samples, 2 right).
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_a_calibrated_model_has_small_ece_and_an_overconfident_one_does_not():
    logits, labels = sampled(scale=1.0)
    assert expected_calibration_error(softmax(logits), labels) < 0.02
    logits, labels = sampled(scale=3.0)
    assert expected_calibration_error(softmax(logits), labels) > 0.1


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_the_fitted_temperature_undoes_the_miscalibration(scale):
    logits, labels = sampled(scale)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(scale, rel=0.1)
    assert expected_calibration_error(softmax(logits, temperature), labels) < 0.02
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels)
    assert (softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()  # the prediction never changes


@pytest.fixture
def tempered(demo_checkpoint, tmp_path):
    """The demo checkpoint with every combination's temperature set to 2."""
    copy = tmp_path / "tempered"
    shutil.copytree(demo_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    config["temperatures"] = dict.fromkeys(("atv", "at", "av", "tv", "a", "t", "v"), 2.0)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_the_predictor_applies_the_checkpoint_temperatures(demo_checkpoint, tempered):
    raw = Predictor.from_pretrained(demo_checkpoint, device="cpu")
    raw.config.temperatures = {}
    calibrated = Predictor.from_pretrained(tempered, device="cpu")
    text = "I am so happy, this is the best day ever!"
    a, b = raw.predict(text=text), calibrated.predict(text=text)
    assert b.label == a.label and sum(b.probabilities.values()) == pytest.approx(1.0)
    assert max(b.probabilities.values()) < max(a.probabilities.values())  # less peaked
    logits = np.array(list(a.contributions.logits.values()))
    assert list(b.probabilities.values()) == pytest.approx(list(softmax(logits, 2.0)), abs=1e-5)
    rows = calibrated.predict_combinations(text=text)
    assert rows[0].probabilities == pytest.approx(b.probabilities, abs=1e-6)
    # The page says what its numbers are.
    assert "calibrated for each combination" in probability_note(calibrated)
    assert "not calibrated" in probability_note(raw)


@pytest.mark.parametrize("temperatures", [{"atv": 0.0}, {"xyz": 1.0}, {"a": "hot"}, [1.0]])
def test_invalid_temperatures_are_refused(tempered, temperatures):
    config = json.loads((tempered / "config.json").read_text())
    config["temperatures"] = temperatures
    (tempered / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="temperatures must map combination names"):
        read_checkpoint_config(tempered)
