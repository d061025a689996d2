"""Modalities and modality combinations.

Every sample sees some non-empty subset of {audio, text, vision}. MCULoRA keeps one adapter per subset
("combination"), so the subsets need a stable index that checkpoints, routing and evaluation agree on.
The index order is the reference implementation's: 0=atv, 1=at, 2=av, 3=tv, 4=a, 5=t, 6=v.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

import torch


class Modality(enum.StrEnum):
    """One input channel. The order of the members is the order of the mask bits (a, t, v)."""

    AUDIO = "audio"
    TEXT = "text"
    VISION = "vision"

    @property
    def letter(self) -> str:
        return {"audio": "a", "text": "t", "vision": "v"}[self.value]

    @classmethod
    def from_letter(cls, letter: str) -> Modality:
        for modality in cls:
            if modality.letter == letter:
                return modality
        raise ValueError(f"unknown modality letter {letter!r}; expected one of 'a', 't', 'v'")


MODALITIES: tuple[Modality, ...] = tuple(Modality)

# Combination names in index order; each name lists its modalities' letters in a, t, v order.
COMBINATIONS: tuple[str, ...] = ("atv", "at", "av", "tv", "a", "t", "v")
NUM_COMBINATIONS = len(COMBINATIONS)


def combination_name(modalities: Iterable[Modality | str]) -> str:
    """Canonical name of a set of modalities, e.g. {TEXT, AUDIO} -> "at"."""
    present = {m if isinstance(m, Modality) else Modality(m) for m in modalities}
    if not present:
        raise ValueError("a combination needs at least one modality")
    return "".join(m.letter for m in MODALITIES if m in present)


def combination_index(combination: str | Iterable[Modality | str]) -> int:
    """Stable index of a combination given its letters ("tv", "vt") or its modalities."""
    if isinstance(combination, str):
        letters = set(combination)
        if not combination or not letters <= set("atv") or len(letters) != len(combination):
            raise ValueError(f"unknown combination {combination!r}; expected one of {', '.join(COMBINATIONS)}")
        name = "".join(letter for letter in "atv" if letter in letters)
    else:
        name = combination_name(combination)
    return COMBINATIONS.index(name)


def combination_modalities(name_or_index: str | int) -> tuple[Modality, ...]:
    """Modalities of a combination, in a, t, v order."""
    index = name_or_index if isinstance(name_or_index, int) else combination_index(name_or_index)
    return tuple(Modality.from_letter(letter) for letter in COMBINATIONS[index])


# mask_table[k] is the (a, t, v) availability of combination k.
_MASK_TABLE = torch.tensor([[m.letter in name for m in MODALITIES] for name in COMBINATIONS], dtype=torch.bool)
# _INDEX_OF_BITS[4a + 2t + v] -> combination index; -1 for the empty set.
_INDEX_OF_BITS = torch.full((8,), -1, dtype=torch.long)
for _k, _row in enumerate(_MASK_TABLE.tolist()):
    _INDEX_OF_BITS[4 * _row[0] + 2 * _row[1] + _row[2]] = _k


def mask_table(device: torch.device | str | None = None) -> torch.Tensor:
    """Bool tensor [7, 3]: row k is the (audio, text, vision) availability of combination k."""
    return _MASK_TABLE.to(device) if device is not None else _MASK_TABLE.clone()


def mask_to_index(mask: torch.Tensor) -> torch.Tensor:
    """[..., 3] bool availability (a, t, v) -> [...] combination index. Raises on an all-missing row."""
    mask = mask.to(torch.bool)
    bits = mask[..., 0].long() * 4 + mask[..., 1].long() * 2 + mask[..., 2].long()
    index = _INDEX_OF_BITS.to(mask.device)[bits]
    if (index < 0).any():
        raise ValueError("a sample has no modality available; every sample needs at least one")
    return index


def index_to_mask(index: torch.Tensor | int | Sequence[int]) -> torch.Tensor:
    """Combination index (any shape) -> bool availability [..., 3] in (a, t, v) order."""
    index = torch.as_tensor(index, dtype=torch.long)
    return _MASK_TABLE.to(index.device)[index]
