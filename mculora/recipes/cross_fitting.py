"""K-fold cross-fitting: the fusion learns from encoder outputs on items the encoders never saw.

The fusion is stacked on the encoder networks' outputs. Outputs of a network on the items it was trained on are
cleaner than any input at run time (the network fits them), so a fusion trained on them learns to trust every
modality more than it should, fits its training pairs in the first epoch, and its temperatures are fitted to the
wrong confidence. Cross-fitting removes that: the training items are split into K folds by group (speaker, actor,
dialogue, comment or image: a group never spans two folds), K networks per modality are each trained without one
fold, and each training item's features come from the network that did not see it. The served networks are trained
on all training items; validation and test items are unseen by every network, so theirs come from the served ones.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mculora.recipes.sources import EKMAN, Item

# The last values of every encoder's vector are its network's 7 logits (`mculora.encoders`' layouts).
LOGITS = len(EKMAN)
# A stitch's ridge penalty per fitted row, on standardised inputs: directions of the fold outputs with less than about
# 1 % of a column's variance are damped rather than fitted to noise.
RIDGE = 0.01


def fold_assignment(items: Sequence[Item], folds: int, seed: int) -> dict[tuple[str, str], int]:
    """(source, group) of every training item -> its fold. Per corpus, the groups are put in a seeded order and dealt
    round-robin, so that each fold holds out its share of every corpus (EmoDB has only 5 training speakers)."""
    groups = defaultdict(set)
    for item in items:
        if item.split == "train":
            groups[item.source].add(item.group)

    def rank(source: str, group: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{source}:{group}".encode(), digest_size=8).digest()

    return {
        (source, group): position % folds
        for source, names in groups.items()
        for position, group in enumerate(sorted(names, key=lambda group: rank(source, group)))
    }


def without_fold(items: Sequence[Item], fold: int, folds: int, seed: int) -> list[Item]:
    """``items`` less the training items of ``fold``: what that fold's networks learn from (validation and test
    items stay, for the networks' own reports)."""
    assignment = fold_assignment(items, folds, seed)
    return [item for item in items if item.split != "train" or assignment[item.source, item.group] != fold]


def held_out(items: Sequence[Item], fold: int, folds: int, seed: int) -> list[Item]:
    """The training items of ``fold``: those whose features that fold's networks give."""
    assignment = fold_assignment(items, folds, seed)
    return [item for item in items if item.split == "train" and assignment[item.source, item.group] == fold]


def network_accuracy(vectors: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the encoder network's own prediction (the argmax of the logits in its vectors)."""
    if not len(labels):
        return float("nan")
    return float((vectors[:, -LOGITS:].argmax(1) == labels).mean())


@dataclass
class Stitch:
    """A linear map from one fold network's outputs to the served network's.

    Networks trained from scratch on different items learn different features: unit 17 of one fold's pooled
    embedding is not unit 17 of the served network's (on held-out speech clips the median correlation of matching
    units was 0.48). The fusion, trained on fold outputs and served on the served network's, needs them in one
    coordinate system. So each fold's learned outputs are mapped onto the served network's by ridge regression,
    fitted on training items that both networks learned from (the other folds' items): equal footing, so the map
    carries coordinates, not cleanliness. The columns that both give identically (the hand-built descriptors) pass
    through unchanged.
    """

    trained: np.ndarray  # bool [D]: the columns that differ between the two networks
    mean: np.ndarray  # float [trained]: the fold outputs' column means and spreads, to standardise them
    scale: np.ndarray
    weights: np.ndarray  # float [trained + 1, trained]: the map from standardised outputs, bias row last
    correlation: dict[str, float]  # median per-column correlation with the served outputs, before and after

    @classmethod
    def fit(cls, fold: np.ndarray, served: np.ndarray, ridge: float = RIDGE, seed: int = 0) -> Stitch:
        """Fit on 80 % of the rows of (fold, served), both [N, D] outputs of the same items; the correlations are
        measured on the other 20 %. The fold outputs are standardised first, so that ``ridge`` means the same for
        unit-length text embeddings and for unbounded CNN features."""
        trained = ~np.all(fold == served, axis=0)
        order = np.random.default_rng(seed).permutation(len(fold))
        fit_rows, check_rows = order[: int(0.8 * len(order))], order[int(0.8 * len(order)) :]
        inputs = fold[fit_rows][:, trained].astype(np.float64)
        mean, scale = inputs.mean(0), np.maximum(inputs.std(0), 1e-6)
        design = np.c_[(inputs - mean) / scale, np.ones(len(fit_rows))]
        penalty = ridge * len(fit_rows) * np.eye(design.shape[1])
        penalty[-1, -1] = 0.0  # the bias is not shrunk
        weights = np.linalg.solve(design.T @ design + penalty, design.T @ served[fit_rows][:, trained])
        stitch = cls(trained, mean, scale, weights, {})
        target = served[check_rows][:, trained]
        stitch.correlation = {
            "as_trained": _median_correlation(fold[check_rows][:, trained], target),
            "stitched": _median_correlation(stitch(fold[check_rows])[:, trained], target),
        }
        return stitch

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        out = vectors.astype(np.float32).copy()
        learned = np.c_[(vectors[:, self.trained] - self.mean) / self.scale, np.ones(len(vectors))]
        out[:, self.trained] = (learned @ self.weights).astype(np.float32)
        return out


def _median_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Median over columns of the Pearson correlation between a[:, j] and b[:, j] (constant columns skipped)."""
    a, b = a - a.mean(0), b - b.mean(0)
    scale = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    usable = scale > 0
    return float(np.median((a * b).sum(0)[usable] / scale[usable])) if usable.any() else float("nan")
