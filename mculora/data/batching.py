"""Dialogue batches: every utterance of a dialogue stays together, because the model attends across the dialogue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from mculora.data.gcnet import Dialogue
from mculora.modalities import MODALITIES, Modality


class DialogueDataset(Dataset):
    """One item per dialogue; use with `collate_fn=collate_dialogues`."""

    def __init__(self, dialogues: Sequence[Dialogue]) -> None:
        self.dialogues = list(dialogues)

    def __len__(self) -> int:
        return len(self.dialogues)

    def __getitem__(self, index: int) -> Dialogue:
        return self.dialogues[index]


@dataclass
class Batch:
    features: dict[Modality, torch.Tensor]  # float32 [B, L, D_m], zero-padded
    available: torch.Tensor  # bool [B, L, 3] in MODALITIES order; False on padding
    utterance_mask: torch.Tensor  # bool [B, L]: True for real utterances
    labels: torch.Tensor  # [B, L] int64 (classification) or float32 (regression); 0 on padding
    speakers: torch.Tensor  # int64 [B, L]; 0 on padding
    names: list[str]  # dialogue names

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            features={m: x.to(device) for m, x in self.features.items()},
            available=self.available.to(device),
            utterance_mask=self.utterance_mask.to(device),
            labels=self.labels.to(device),
            speakers=self.speakers.to(device),
            names=list(self.names),
        )

    @property
    def batch_size(self) -> int:
        return self.utterance_mask.shape[0]


def collate_dialogues(dialogues: Sequence[Dialogue]) -> Batch:
    """Pad dialogues to the longest one; padding is zero and masked out everywhere."""
    if not dialogues:
        raise ValueError("cannot collate an empty list of dialogues")
    label_dtypes = {d.labels.dtype for d in dialogues}
    if len(label_dtypes) > 1:
        raise ValueError(f"dialogues mix label types {sorted(map(str, label_dtypes))}")
    batch, length = len(dialogues), max(len(d) for d in dialogues)

    features = {
        m: torch.zeros(batch, length, dialogues[0].features[m].shape[1], dtype=torch.float32) for m in MODALITIES
    }
    available = torch.zeros(batch, length, len(MODALITIES), dtype=torch.bool)
    utterance_mask = torch.zeros(batch, length, dtype=torch.bool)
    labels = torch.zeros(batch, length, dtype=torch.from_numpy(dialogues[0].labels).dtype)
    speakers = torch.zeros(batch, length, dtype=torch.int64)
    for row, dialogue in enumerate(dialogues):
        size = len(dialogue)
        for column, modality in enumerate(MODALITIES):
            features[modality][row, :size] = torch.from_numpy(dialogue.features[modality])
            available[row, :size, column] = torch.from_numpy(dialogue.available[modality])
        utterance_mask[row, :size] = True
        labels[row, :size] = torch.from_numpy(dialogue.labels)
        speakers[row, :size] = torch.from_numpy(dialogue.speakers)
    return Batch(features, available, utterance_mask, labels, speakers, [d.name for d in dialogues])
