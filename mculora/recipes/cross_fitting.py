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

import numpy as np

from mculora.recipes.sources import EKMAN, Item

# The last values of every encoder's vector are its network's 7 logits (`mculora.encoders`' layouts).
LOGITS = len(EKMAN)


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
