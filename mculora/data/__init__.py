"""Features, labels and folds of the GCNet/MoMKE releases, and dialogue batches for training."""

from mculora.data.batching import Batch, DialogueDataset, collate_dialogues
from mculora.data.gcnet import (
    DATASETS,
    DEFAULT_FEATURES,
    DatasetSpec,
    Dialogue,
    FeatureCorpus,
    Split,
    load_corpus,
)

__all__ = [
    "DATASETS",
    "DEFAULT_FEATURES",
    "Batch",
    "DatasetSpec",
    "Dialogue",
    "DialogueDataset",
    "FeatureCorpus",
    "Split",
    "collate_dialogues",
    "load_corpus",
]
