"""Cross-fitting's folds: a group (speaker, actor, dialogue, comment, image) never spans two folds, the folds
partition the training items, and validation and test items stay with every fold's networks."""

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mculora.modalities import Modality
from mculora.recipes.cross_fitting import fold_assignment, held_out, network_accuracy, without_fold
from mculora.recipes.sources import EKMAN, Item, all_items


def _items() -> list[Item]:
    items = []
    for i in range(400):
        split = ("train", "train", "val", "test")[i % 4]
        items.append(Item(f"x{i}", Modality.AUDIO, EKMAN[i % 7], split, "ravdess", f"actor{i % 23}", path=Path(".")))
    return items


def test_folds_partition_the_training_items_by_group():
    items = _items()
    folds = [held_out(items, k, 3, seed=5) for k in range(3)]
    train = [item for item in items if item.split == "train"]
    assert sorted(item.id for fold in folds for item in fold) == sorted(item.id for item in train)
    fold_of_group = defaultdict(set)
    for k, fold in enumerate(folds):
        for item in fold:
            fold_of_group[item.group].add(k)
    assert all(len(found) == 1 for found in fold_of_group.values())
    for k in range(3):
        kept = without_fold(items, k, 3, seed=5)
        assert {item.id for item in kept}.isdisjoint(item.id for item in folds[k])
        assert {item.id for item in items if item.split != "train"} <= {item.id for item in kept}
    # The 23 actors are dealt 8, 8 and 7; another seed deals them differently, the same seed identically.
    assert sorted(Counter(fold_assignment(items, 3, 5).values()).values()) == [7, 8, 8]
    assert fold_assignment(items, 3, 6) != fold_assignment(items, 3, 5) == fold_assignment(items, 3, 5)


def test_network_accuracy_reads_the_logits_at_the_end_of_each_vector():
    vectors = np.zeros((4, 10), np.float32)
    vectors[np.arange(4), 3 + np.array([0, 1, 2, 6])] = 1.0  # logits in columns 3..9
    assert network_accuracy(vectors, np.array([0, 1, 2, 5])) == 0.75


def test_the_real_corpora_split_into_balanced_folds(shared_data):
    items = all_items(shared_data)
    first = {item.id for item in held_out(items, 0, 2, seed=66)}
    for source in ("goemotions", "meld", "ravdess", "emodb", "fer2013"):
        train = [item for item in items if item.source == source and item.split == "train"]
        share = sum(item.id in first for item in train) / len(train)
        assert 0.3 <= share <= 0.7, (source, share)  # EmoDB: 5 speakers, dealt 3 and 2


def test_a_stitch_maps_a_fold_networks_features_onto_the_served_ones():
    from mculora.recipes.cross_fitting import Stitch

    rng = np.random.default_rng(0)
    descriptor = rng.normal(size=(500, 3))  # hand-built: both networks give it identically
    # Small values, like a unit-length text embedding's: the map must not shrink them towards zero.
    fold_learned = 0.02 * rng.normal(size=(500, 8))
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # the served network's units mix the fold's differently
    served_learned = fold_learned @ rotation + 0.001 * rng.normal(size=(500, 8))
    fold, served = np.c_[descriptor, fold_learned], np.c_[descriptor, served_learned]
    stitch = Stitch.fit(fold, served)
    assert stitch.trained.tolist() == [False] * 3 + [True] * 8
    assert stitch.correlation["as_trained"] < 0.5 < 0.95 < stitch.correlation["stitched"]
    fresh = np.c_[rng.normal(size=(20, 3)), 0.02 * rng.normal(size=(20, 8))]
    mapped = stitch(fresh)
    np.testing.assert_array_equal(mapped[:, :3], fresh[:, :3].astype(np.float32))
    np.testing.assert_allclose(mapped[:, 3:], fresh[:, 3:] @ rotation, atol=0.003)
