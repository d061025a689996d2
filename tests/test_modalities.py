import pytest
import torch

from mculora.modalities import (
    COMBINATIONS,
    Modality,
    combination_index,
    combination_modalities,
    combination_name,
    index_to_mask,
    mask_to_index,
)


def test_seven_nonempty_combinations_in_reference_order():
    assert COMBINATIONS == ("atv", "at", "av", "tv", "a", "t", "v")
    masks = {tuple(index_to_mask(k).tolist()) for k in range(7)}
    assert len(masks) == 7 and (False, False, False) not in masks


def test_mask_index_round_trip():
    index = torch.arange(7)
    assert torch.equal(mask_to_index(index_to_mask(index)), index)
    assert index_to_mask(combination_index("tv")).tolist() == [False, True, True]


def test_names_and_letters():
    assert combination_name([Modality.VISION, Modality.AUDIO]) == "av"
    assert combination_index("vt") == combination_index("tv") == 3
    assert combination_modalities("at") == (Modality.AUDIO, Modality.TEXT)
    assert combination_modalities(6) == (Modality.VISION,)


@pytest.mark.parametrize("bad", ["", "x", "aa", "audio"])
def test_bad_names_are_rejected(bad):
    with pytest.raises(ValueError):
        combination_index(bad)


def test_all_missing_mask_is_rejected():
    with pytest.raises(ValueError, match="no modality"):
        mask_to_index(torch.tensor([[True, False, False], [False, False, False]]))
