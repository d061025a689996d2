"""The real-corpus item lists: counts, labels, leakage-free splits, ids and the extract manifest."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from real_data import data_missing

from mculora.data.extract import read_manifest
from mculora.modalities import Modality
from mculora.recipes.sources import (
    EKMAN,
    MANIFEST_COLUMNS,
    SPLITS,
    Item,
    all_items,
    emodb_items,
    fer2013_items,
    goemotions_items,
    meld_items,
    ravdess_items,
    subsample,
    write_manifest,
)

# (source, split) -> items, from the manifests and the decisions in the sources module docstring.
EXPECTED = {
    # 43,410 / 5,426 / 5,427 rows less the multi-label ones (3,855 train per the manifest; 480 dev, 459 test).
    ("goemotions", "train"): 43410 - 3855,
    ("goemotions", "val"): 5426 - 480,
    ("goemotions", "test"): 5427 - 459,
    # MELD dev (1,109) is the test split; MELD train (9,989) splits 8,884 / 1,105 by dialogue (104 of 1,038 to val).
    ("meld", "train"): 8884,
    ("meld", "val"): 1105,
    ("meld", "test"): 1109,
    # 60 clips per actor: train 16 actors, val 2, test 4.
    ("ravdess", "train"): 16 * 60,
    ("ravdess", "val"): 2 * 60,
    ("ravdess", "test"): 4 * 60,
    # 408 clips of 8 speakers less 58 boredom = 350: train 03 09 10 13 14, val 11, test 08 12.
    ("emodb", "train"): 225,
    ("emodb", "val"): 47,
    ("emodb", "test"): 78,
    # PublicTest 3,589 less 1 blank; Training 28,709 less 12 blank, 340 copies of test images, 83 ambiguous.
    ("fer2013", "train"): 25440,
    ("fer2013", "val"): 2834,
    ("fer2013", "test"): 3589 - 1,
}
LOADERS = (goemotions_items, meld_items, ravdess_items, emodb_items, fer2013_items)
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@pytest.fixture(scope="module")
def items(shared_data: Path) -> list[Item]:
    # One scan for the whole module: FER-2013 decodes 32k images (a few seconds).
    return all_items(shared_data)


def test_counts_per_source_and_split(items: list[Item]) -> None:
    assert Counter((item.source, item.split) for item in items) == EXPECTED
    assert sum(EXPECTED.values()) == len(items)


def test_meld_val_is_a_tenth_of_the_train_dialogues(items: list[Item]) -> None:
    groups = {split: {i.group for i in items if i.source == "meld" and i.split == split} for split in ("train", "val")}
    assert len(groups["val"]) == round(0.1 * (len(groups["train"]) + len(groups["val"])))


def test_fer_val_is_a_stratified_tenth(items: list[Item]) -> None:
    fer = Counter((item.split, item.label) for item in items if item.source == "fer2013")
    for label in EKMAN:
        assert fer["val", label] / (fer["train", label] + fer["val", label]) == pytest.approx(0.1, abs=0.02)


def test_labels_are_ekman_and_every_modality_trains_on_all_of_them(items: list[Item]) -> None:
    assert {item.label for item in items} <= set(EKMAN)
    for modality in Modality:
        assert {i.label for i in items if i.modality is modality and i.split == "train"} == set(EKMAN), modality
    # Per RAVDESS actor: 4 neutral + 8 calm clips -> 12 neutral; 8 of every other emotion.
    ravdess = Counter(item.label for item in items if item.source == "ravdess")
    assert ravdess["neutral"] == 22 * 12 and ravdess["anger"] == 22 * 8


def test_no_group_crosses_splits(items: list[Item]) -> None:
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for item in items:
        groups[item.source, item.split].add(item.group)
    for source in {item.source for item in items}:
        train, val, test = (groups[source, split] for split in SPLITS)
        assert not test & (train | val), source
        assert not train & val, source


def test_ids_are_unique_and_safe(items: list[Item]) -> None:
    ids = [item.id for item in items]
    assert len(set(ids)) == len(ids)
    assert all(SAFE_ID.match(i) for i in ids)


def test_media_and_text(items: list[Item]) -> None:
    for item in items:
        if item.modality is Modality.TEXT:
            assert item.text and item.path is None, item.id
        else:
            assert item.text is None and item.path is not None and item.path.is_absolute(), item.id
    # is_file() on the small corpora and a sample of FER keeps the check fast.
    media = [i for i in items if i.path is not None and i.source != "fer2013"] + subsample(
        [i for i in items if i.source == "fer2013"], 20
    )
    assert all(item.path.is_file() for item in media)


def test_text_is_normalised(items: list[Item]) -> None:
    texts = [item.text for item in items if item.text is not None]
    assert not any("\u2019" in t or "\u2026" in t or "  " in t or t != t.strip() for t in texts)


def test_fer_blanks_named_in_the_manifest_are_gone(items: list[Item]) -> None:
    names = {item.path.relative_to(item.path.parents[2]).as_posix() for item in items if item.source == "fer2013"}
    for blank in (
        "test/angry/PublicTest_5543497.jpg",
        "train/happy/Training_87607167.jpg",
        "train/sad/Training_48621797.jpg",
        "train/neutral/Training_3542668.jpg",
        "train/neutral/Training_89335926.jpg",
        "train/angry/Training_10131352.jpg",
    ):
        assert blank not in names


def test_subsample_bounds(items: list[Item]) -> None:
    small = subsample(items, 3, seed=1)
    sizes = Counter((i.source, i.split, i.label) for i in small)
    available = Counter((i.source, i.split, i.label) for i in items)
    assert sizes == {key: min(3, count) for key, count in available.items()}
    assert small == subsample(items, 3, seed=1)
    assert small != subsample(items, 3, seed=2)
    order = {item.id: index for index, item in enumerate(items)}
    assert [order[i.id] for i in small] == sorted(order[i.id] for i in small)


def test_manifest_round_trip(items: list[Item], tmp_path: Path) -> None:
    small = subsample(items, 2)
    path = tmp_path / "manifest.csv"
    write_manifest(small, path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        rows = list(reader)
    assert [(r["id"], r["label"], r["split"], r["source"]) for r in rows] == [
        (i.id, i.label, i.split, i.source) for i in small
    ]
    for row, item in zip(rows, small, strict=True):
        assert row["text"] == (item.text or "")
        assert row["audio"] == (str(item.path) if item.modality is Modality.AUDIO else "")
        assert row["image"] == (str(item.path) if item.modality is Modality.VISION else "")

    parsed = read_manifest(path)
    assert [(r.id, r.label, r.split) for r in parsed] == [(i.id, i.label, i.split) for i in small]
    for row, item in zip(parsed, small, strict=True):
        assert row.text == item.text
        assert row.audio == (item.path if item.modality is Modality.AUDIO else None)
        assert row.image == (item.path if item.modality is Modality.VISION else None)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda f: f.__name__)
def test_missing_corpus_folder_is_named(loader, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder .*/ not found"):
        loader(tmp_path)


def test_missing_real_data_skips_on_a_desk_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        data_missing("no data here")
    for value in ("true", "1"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="under CI the real data must be there"):
            data_missing("no data here")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        data_missing("no data here")
