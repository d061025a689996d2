"""Label-paired training samples: every modality's vector in a sample has the sample's label, and the fusion's
training noise is scaled to each feature's spread."""

import numpy as np
import torch

from mculora.modalities import MODALITIES
from mculora.recipes.pairing import Pool, paired_batch, with_feature_noise


def pools(rng: np.random.Generator) -> dict:
    """Per modality a training pool whose vectors encode their label in column 0, with very different spreads."""
    made = {}
    for i, modality in enumerate(MODALITIES):
        labels = rng.integers(0, 7, 300)
        vectors = rng.normal(0, 10.0**i, (300, 5)).astype(np.float32)
        vectors[:, 0] = labels
        made[modality, "train"] = Pool(vectors, labels, np.array(["x"] * 300), [str(j) for j in range(300)])
    return made


def test_a_paired_sample_joins_vectors_of_its_label():
    rng = np.random.default_rng(0)
    batch = paired_batch(pools(rng), "train", rng.integers(0, 7, 64), rng)
    for modality in MODALITIES:
        assert torch.equal(batch.features[modality][:, 0, 0].long(), batch.labels[:, 0])


def test_feature_noise_is_scaled_to_each_features_spread():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    made = pools(rng)
    spread = {m: torch.from_numpy(made[m, "train"].vectors.std(0)) for m in MODALITIES}
    batch = paired_batch(made, "train", rng.integers(0, 7, 4096), rng)
    clean = {m: batch.features[m].clone() for m in MODALITIES}
    noisy = with_feature_noise(batch, 0.5, spread)
    for modality in MODALITIES:
        relative = ((noisy.features[modality] - clean[modality]) / spread[modality]).reshape(-1, 5)
        torch.testing.assert_close(relative.std(0), torch.full((5,), 0.5), atol=0.03, rtol=0)
        assert abs(float(relative.mean())) < 0.02
