"""Benchmark metrics, as fractions in [0, 1] (MAE and Pearson r excepted), and their aggregation over seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, recall_score

CLASSIFICATION_METRICS = ("accuracy", "ua", "f1")
REGRESSION_METRICS = ("acc2", "f1", "mae", "corr", "mae_nonzero", "corr_nonzero")
PRIMARY_METRIC = {"classification": "accuracy", "regression": "acc2"}


def classification_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Accuracy (WA), UA (macro recall) and weighted F1 of argmax predictions."""
    predictions = logits.argmax(axis=-1)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "ua": float(recall_score(labels, predictions, average="macro", zero_division=0)),
        "f1": float(f1_score(labels, predictions, average="weighted", zero_division=0)),
    }


def _pearson(labels: np.ndarray, predictions: np.ndarray) -> float:
    # A constant prediction (or label set) has no defined correlation; report 0 rather than NaN.
    if len(labels) < 2 or predictions.std() == 0 or labels.std() == 0:
        return 0.0
    return float(np.corrcoef(labels, predictions)[0, 1])


def regression_metrics(labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Acc-2 and weighted F1 of the sign on non-zero labels (the MOSI/MOSEI convention); MAE and Pearson r on all
    labels and, as the reference code computes them, on the non-zero labels only."""
    predictions = outputs.reshape(-1)
    nonzero = labels != 0
    positive_true, positive_pred = labels[nonzero] > 0, predictions[nonzero] > 0
    any_nonzero = bool(nonzero.any())
    return {
        "acc2": float(accuracy_score(positive_true, positive_pred)) if any_nonzero else 0.0,
        "f1": float(f1_score(positive_true, positive_pred, average="weighted", zero_division=0))
        if any_nonzero
        else 0.0,
        "mae": float(mean_absolute_error(labels, predictions)),
        "corr": _pearson(labels, predictions),
        "mae_nonzero": float(mean_absolute_error(labels[nonzero], predictions[nonzero])) if any_nonzero else 0.0,
        "corr_nonzero": _pearson(labels[nonzero], predictions[nonzero]),
    }


def task_metrics(task: str, labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    if task == "classification":
        return classification_metrics(labels, outputs)
    if task == "regression":
        return regression_metrics(labels, outputs)
    raise ValueError(f"unknown task {task!r}")


def mean_metrics(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over runs (folds)."""
    return {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}


def mean_and_std(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over runs (seeds) with its population std beside it as ``<name>_std``."""
    summary: dict[str, float] = {}
    for name in runs[0]:
        values = [run[name] for run in runs]
        summary[name] = float(np.mean(values))
        summary[f"{name}_std"] = float(np.std(values))
    return summary


def classification_report(labels: np.ndarray, logits: np.ndarray, label_names: Sequence[str]) -> dict:
    """What a model card reports: accuracy, UA, macro and weighted F1, per-class recall and the confusion matrix
    (rows = true label, columns = prediction), over the label set ``label_names`` (indices 0..C-1)."""
    predictions = logits.argmax(axis=-1)
    classes = list(range(len(label_names)))
    recall = recall_score(labels, predictions, labels=classes, average=None, zero_division=0)
    present = np.isin(classes, labels)  # a class with no test sample has no recall to average
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predictions)),
        "ua": float(recall[present].mean()),
        "macro_f1": float(
            f1_score(labels, predictions, labels=np.array(classes)[present], average="macro", zero_division=0)
        ),
        "weighted_f1": float(f1_score(labels, predictions, average="weighted", zero_division=0)),
        "recall": {name: float(r) for name, r, p in zip(label_names, recall, present, strict=True) if p},
        "confusion": confusion_matrix(labels, predictions, labels=classes).tolist(),
    }


# A model that gives one class to more than this share of a class-balanced set has collapsed onto it (with 6 or 7
# classes an unbiased model gives each about 15 %; 35 % is more than double).
COLLAPSE_SHARE = 0.35


def balanced_draw(labels: np.ndarray, seed: int = 0, most: int | None = None) -> np.ndarray:
    """Indices of an equal number of items per class present (the rarest class's count, or ``most``), drawn with
    ``seed``."""
    rng = np.random.default_rng(seed)
    present = np.unique(labels)
    count = min(int((labels == c).sum()) for c in present)
    count = count if most is None else min(count, most)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), count, replace=False) for c in present]))


def collapse_check(labels: np.ndarray, logits: np.ndarray, label_names: Sequence[str], seed: int = 0) -> dict:
    """The predicted-class distribution on a class-balanced draw of (labels, logits), and whether one class takes
    more than `COLLAPSE_SHARE` of it."""
    predictions = logits.argmax(axis=-1)[balanced_draw(labels, seed)]
    shares = {name: float((predictions == k).mean()) for k, name in enumerate(label_names)}
    top = max(shares, key=shares.get)
    return {
        "balanced_items": int(len(predictions)),
        "prediction_shares": shares,
        "largest": top,
        "largest_share": shares[top],
        "collapsed": shares[top] > COLLAPSE_SHARE,
    }
