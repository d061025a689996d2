"""Calibrated probabilities: one temperature per modality combination, and the expected calibration error.

A network trained with cross-entropy is usually over-confident: it shows 99 % where it is right 70 % of the time.
Temperature scaling (Guo et al., 2017) divides the logits by a scalar T fitted on validation data to minimise the
negative log-likelihood; the predicted class never changes, only how sure the probabilities say the model is. The
same model is more or less certain depending on which modalities it has, so each combination gets its own T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from mculora.training.evaluate import CONDITIONS, predict_conditions

ECE_BINS = 15
# T is searched as log T in this range (T from 0.05 to 20): wide enough for any sensible model, and bounded so that
# a degenerate validation set cannot push it to 0 or infinity.
LOG_T_RANGE = (-3.0, 3.0)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    scaled = torch.as_tensor(logits, dtype=torch.float64) / temperature
    return float(torch.nn.functional.cross_entropy(scaled, torch.as_tensor(labels, dtype=torch.long)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the NLL of softmax(logits / T) on (logits, labels)."""
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
        bounds=LOG_T_RANGE,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return torch.as_tensor(logits, dtype=torch.float64).div(temperature).softmax(-1).numpy()


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)| over equal-width confidence bins of the top class."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin b holds confidences in (b/bins, (b+1)/bins]; the top class's confidence is at least 1/C > 0.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def fit_temperatures(
    model: torch.nn.Module, batches: Sequence, device: torch.device, conditions: Sequence[str] = CONDITIONS
) -> dict[str, float]:
    """One temperature per condition, fitted on ``batches`` (validation data, never the test set)."""
    predictions = predict_conditions(model, batches, conditions, device)
    return {condition: fit_temperature(logits, labels) for condition, (labels, logits) in predictions.items()}


def calibration_report(
    predictions: dict[str, tuple[np.ndarray, np.ndarray]], temperatures: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per condition, from its test-set (labels, logits): T, and the ECE and NLL before and after scaling."""
    report = {}
    for condition, (labels, logits) in predictions.items():
        temperature = temperatures[condition]
        report[condition] = {
            "temperature": temperature,
            "ece_before": expected_calibration_error(softmax(logits), labels),
            "ece_after": expected_calibration_error(softmax(logits, temperature), labels),
            "nll_before": negative_log_likelihood(logits, labels),
            "nll_after": negative_log_likelihood(logits, labels, temperature),
        }
    return report
