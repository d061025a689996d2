"""Label-paired samples for corpora that were not recorded together, as `Batch`es of single utterances (L = 1).

A `Pool` holds one modality's extracted vectors of one split. A paired sample takes, for its label, one random
vector of that label from every modality's pool: drawn afresh for training (`paired_batch`), or as a fixed,
seeded, label-balanced set for evaluation (`fixed_pairs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mculora.data import Batch
from mculora.modalities import MODALITIES, Modality
from mculora.recipes.sources import EKMAN
from mculora.recipes.speaker_sessions import SpeakerSessions


@dataclass
class Pool:
    """The extracted vectors of one modality and split, with labels and sources."""

    vectors: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # int64 [N]
    sources: np.ndarray  # str [N]
    ids: list[str]  # item ids, row by row

    def by_label(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels == label)


def make_batch(vectors: dict[Modality, np.ndarray], labels: np.ndarray, available: np.ndarray) -> Batch:
    """Single-utterance samples (L = 1) as a `Batch`; ``available`` is bool [B, 3]."""
    size = len(labels)
    return Batch(
        features={m: torch.from_numpy(v)[:, None] for m, v in vectors.items()},
        available=torch.from_numpy(available)[:, None],
        utterance_mask=torch.ones(size, 1, dtype=torch.bool),
        labels=torch.from_numpy(labels)[:, None],
        speakers=torch.zeros(size, 1, dtype=torch.long),
        names=[],
    )


def paired_rows(pools: dict, split: str, labels: np.ndarray, rng: np.random.Generator) -> dict[Modality, np.ndarray]:
    """For each label, one random row of that label in every modality's pool: {modality: rows [B]}."""
    chosen = {}
    for modality in MODALITIES:
        pool = pools[modality, split]
        rows = np.empty(len(labels), dtype=np.int64)
        for label in np.unique(labels):
            where = labels == label
            rows[where] = rng.choice(pool.by_label(int(label)), size=int(where.sum()))
        chosen[modality] = rows
    return chosen


def paired_batch(
    pools: dict,
    split: str,
    labels: np.ndarray,
    rng: np.random.Generator,
    voice_sessions: SpeakerSessions | None = None,
    session_share: float = 0.0,
) -> Batch:
    """For each label, one random vector of that label from every modality's pool; with ``voice_sessions`` (made
    from the audio pool of ``split``) a random ``session_share`` of the voices moved by a session of their speaker."""
    rows = paired_rows(pools, split, labels, rng)
    vectors = {m: pools[m, split].vectors[rows[m]] for m in MODALITIES}
    if voice_sessions is not None and session_share > 0:
        moving = rng.random(len(labels)) < session_share
        vectors[Modality.AUDIO][moving] = voice_sessions.moved(rows[Modality.AUDIO][moving], rng)
    return make_batch(vectors, labels, np.ones((len(labels), len(MODALITIES)), dtype=bool))


def with_feature_noise(batch: Batch, scale: float, spread: dict[Modality, torch.Tensor]) -> Batch:
    """``batch`` with Gaussian noise of ``scale`` times each feature's training spread added to every vector.

    A training pool is small next to the pairs drawn from it (about 1,200 speech clips behind 16,384 pairs an
    epoch), so the fusion fits its pools' exact vectors within an epoch and validation falls from then on. Noise
    makes each draw a new vector near a real one."""
    for modality in MODALITIES:
        features = batch.features[modality]
        batch.features[modality] = features + scale * spread[modality] * torch.randn_like(features)
    return batch


def fixed_pair_rows(
    pools: dict, split: str, per_label: int, seed: int, classes: Sequence[int] | None = None
) -> tuple[np.ndarray, dict[Modality, np.ndarray]]:
    """A fixed, label-balanced set of pairs of ``classes`` (default: all): (labels [N], each modality's pool rows
    [N]). Every modality cycles through a seeded permutation of its items of each label, so every item is used before
    any repeats."""
    rng = np.random.default_rng(seed)
    classes = range(len(EKMAN)) if classes is None else classes
    labels = np.repeat(np.asarray(classes, dtype=np.int64), per_label)
    rows = {
        m: np.concatenate([np.resize(rng.permutation(pools[m, split].by_label(c)), per_label) for c in classes])
        for m in MODALITIES
    }
    return labels, rows


def fixed_pairs(
    pools: dict, split: str, per_label: int, seed: int, batch_size: int = 256, classes: Sequence[int] | None = None
) -> list[Batch]:
    """`fixed_pair_rows` as batches, for evaluation."""
    labels, rows = fixed_pair_rows(pools, split, per_label, seed, classes)
    vectors = {m: pools[m, split].vectors[rows[m]] for m in MODALITIES}
    return chunked(vectors, labels, np.ones((len(labels), len(MODALITIES)), dtype=bool), batch_size)


def chunked(vectors: dict[Modality, np.ndarray], labels: np.ndarray, available: np.ndarray, size: int) -> list[Batch]:
    """Consecutive batches of at most ``size`` samples."""
    return [
        make_batch({m: v[i : i + size] for m, v in vectors.items()}, labels[i : i + size], available[i : i + size])
        for i in range(0, len(labels), size)
    ]


def unimodal_batches(pool: Pool, modality: Modality, dims: dict[Modality, int], mask: np.ndarray) -> list[Batch]:
    """One modality's natural test items alone (other modalities absent)."""
    labels = pool.labels[mask]
    vectors = {
        m: pool.vectors[mask] if m is modality else np.zeros((len(labels), dims[m]), np.float32) for m in MODALITIES
    }
    available = np.zeros((len(labels), len(MODALITIES)), dtype=bool)
    available[:, MODALITIES.index(modality)] = True
    return chunked(vectors, labels, available, 512)


def shuffled(batches: list[Batch], rng: np.random.Generator):
    """``epoch -> the batches in a new random order``, for fixed training batches."""
    return lambda epoch: [batches[i] for i in rng.permutation(len(batches))]
