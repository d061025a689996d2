"""Every usable item of the real unimodal emotion corpora, with its Ekman-7 label and a leakage-free split.

The corpora were not recorded together: a later step pairs one text, one speech clip and one face of the same label.
This module only lists items; it reads labels (and, for FER-2013, pixels) but copies and caches nothing.
``root`` is the shared data folder with goemotions/, meld_text/, ravdess_speech/, emodb/ and fer2013/.
Splits are fixed (seed ``SEED``), so every run and every machine sees the same train / val / test.

Decisions, per corpus (counts measured on the shared copy):

- GoEmotions (text; data/ekman/{train,dev,test}.tsv). Only single-label rows are kept: a multi-label comment has no
  single right answer for a single-label classifier. Dropped: 3,855 train, 480 dev, 459 test rows. joy -> happiness.
  train -> train, dev -> val, test -> test (the published split). group = comment id ("goemo-<id>").
- MELD (text; {train,dev}_sent_emo.csv, its test split is held out elsewhere; EmoryNLP is not used: its labels are
  not Ekman). joy -> happiness. MELD train is split by dialogue, a seeded 10 % of its dialogues going to val; MELD dev
  becomes test. Dialogue ids restart in each file, so group = "meld-<file>-dlg-<id>". The files are read as UTF-8
  with a cp1252 fallback, and typographic quotes and dashes become ASCII so that MELD and GoEmotions text agree.
  Friends' main characters speak in every split: speakers cannot be held out in a six-person sitcom.
- RAVDESS speech (audio; labels.csv, actors 01-22). calm -> neutral: calm is a low-arousal neutral delivery of the
  same sentences, and Ekman has no calm. Split by actor: test 19-22 (two male, two female: odd actors are male),
  val 17-18, train 01-16. group = actor.
- EmoDB (audio; labels.csv, speakers 03 08 09 10 11 12 13 14 - 15 and 16 are held out elsewhere). boredom is dropped
  (58 clips): it has no Ekman counterpart and is not a neutral delivery. Split by speaker: test 08 (female) + 12 (male),
  val 11 (male), train 03 10 (male) 09 13 14 (female). Speaker sex is from the EmoDB documentation ("Information about
  the speakers"); the shared copy's erklaerung.txt / erkennung.txt do not list it. Disgust is the scarce class (speaker
  08 has none): of the splits (one male + one female test, one val speaker) with at least two clips of every label in
  test and in val, this one keeps the most disgust in train (26 clips), with the larger val speaker of the tied pair.
  EmoDB has no surprise; audio surprise comes from RAVDESS alone. group = speaker.
- FER-2013 (vision; labels.csv, Training + PublicTest). angry/happy/sad -> anger/happiness/sadness. PublicTest ->
  test. Every image is decoded once per call (about 2-5 s for 32k 48x48 JPEGs):
  * 13 blank or near-constant images (pixel std < 2; the next lowest is 4.1) are dropped.
  * group = a hash of the decoded pixels, because the release holds exact duplicates: 340 Training images repeat a
    PublicTest image, and these Training copies are dropped so the test set stays whole and unseen.
  * 83 Training images whose pixels also appear under another label are dropped: the label is ambiguous.
  * a seeded 10 % of the Training groups of each label go to val (label-stratified, duplicates kept together).
  Two Training file names occur under two labels with different pixels, so ids carry the label folder:
  "fer-<label folder>-<file stem>", e.g. "fer-angry-Training_8475486". group = pixel hash ("fer-px-<hex>").
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mculora.data.extract import SAFE_ID, SPLITS  # the manifest written here must pass extract's checks
from mculora.modalities import Modality

EKMAN: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
MANIFEST_COLUMNS: tuple[str, ...] = ("id", "label", "text", "audio", "image", "split", "source")
SEED = 0
VAL_FRACTION = 0.1

RAVDESS_TEST_ACTORS = frozenset({19, 20, 21, 22})
RAVDESS_VAL_ACTORS = frozenset({17, 18})
EMODB_TEST_SPEAKERS = frozenset({"08", "12"})
EMODB_VAL_SPEAKERS = frozenset({"11"})
FER_BLANK_STD = 2.0

# Typographic punctuation -> ASCII: MELD uses curly quotes where GoEmotions mostly has plain ones.
_ASCII_PUNCTUATION = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)

# Corpus label -> Ekman, where the names differ.
_JOY = {"joy": "happiness"}
RAVDESS_TO_EKMAN = {
    "calm": "neutral",
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "fearful": "fear",
    "surprised": "surprise",
}
_FER = {"angry": "anger", "happy": "happiness", "sad": "sadness"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One labelled utterance, clip or face of one corpus."""

    id: str  # unique across all corpora and safe as a file name
    modality: Modality
    label: str  # one of EKMAN
    split: str  # one of SPLITS
    source: str  # goemotions | meld | ravdess | emodb | fer2013
    group: str  # what must not cross splits: comment, dialogue, actor, speaker or image
    text: str | None = None
    path: Path | None = None  # absolute path of the audio or image file

    def __post_init__(self) -> None:
        if not SAFE_ID.match(self.id):
            raise ValueError(f"item id {self.id!r} must be letters, digits, '.', '-' or '_'")
        if self.label not in EKMAN:
            raise ValueError(f"item {self.id}: label {self.label!r} is not one of {EKMAN}")
        if self.split not in SPLITS:
            raise ValueError(f"item {self.id}: split {self.split!r} is not one of {SPLITS}")


def _folder(root: Path, name: str) -> Path:
    folder = Path(root) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder {name}/ not found under the data root {Path(root).resolve()}")
    return folder.resolve()


def _ekman(label: str, renames: dict[str, str]) -> str:
    """The corpus label in Ekman terms; an unexpected label fails loudly rather than being silently dropped."""
    ekman = renames.get(label, label)
    if ekman not in EKMAN:
        raise ValueError(f"label {label!r} has no Ekman mapping")
    return ekman


def _read_csv(path: Path) -> list[dict[str, str]]:
    # MELD-style exports are sometimes cp1252 (a raw 0x92 apostrophe); the shared files are UTF-8.
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _clean_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).translate(_ASCII_PUNCTUATION).split())


def _held_out(keys: Iterable, fraction: float, rng: np.random.Generator) -> set:
    """A seeded ``fraction`` of ``keys`` (sorted first, so the draw does not depend on file order)."""
    ordered = sorted(keys)
    return {ordered[i] for i in rng.permutation(len(ordered))[: round(fraction * len(ordered))]}


def goemotions_items(root: Path) -> list[Item]:
    folder = _folder(root, "goemotions") / "data" / "ekman"
    labels = (folder / "labels.txt").read_text(encoding="utf-8").split()
    items, dropped = [], Counter()
    for file_split, split in (("train", "train"), ("dev", "val"), ("test", "test")):
        with (folder / f"{file_split}.tsv").open(encoding="utf-8", newline="") as handle:
            # QUOTE_NONE: comments contain bare quote characters that are text, not CSV quoting.
            for text, label_ids, comment in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if "," in label_ids:
                    dropped[file_split] += 1
                    continue
                items.append(
                    Item(
                        id=f"goemo-{file_split}-{comment}",
                        modality=Modality.TEXT,
                        label=_ekman(labels[int(label_ids)], _JOY),
                        split=split,
                        source="goemotions",
                        group=f"goemo-{comment}",
                        text=_clean_text(text),
                    )
                )
    log.info("GoEmotions: dropped multi-label rows %s", dict(dropped))
    return items


def meld_items(root: Path) -> list[Item]:
    folder = _folder(root, "meld_text")
    items = []
    for file_split in ("train", "dev"):
        rows = _read_csv(folder / f"{file_split}_sent_emo.csv")
        dialogues = {int(row["Dialogue_ID"]) for row in rows}
        val = _held_out(dialogues, VAL_FRACTION, np.random.default_rng(SEED)) if file_split == "train" else set()
        for row in rows:
            dialogue = int(row["Dialogue_ID"])
            items.append(
                Item(
                    id=f"meld-{file_split}-dlg{dialogue}-utt{int(row['Utterance_ID'])}",
                    modality=Modality.TEXT,
                    label=_ekman(row["Emotion"], _JOY),
                    split="test" if file_split == "dev" else "val" if dialogue in val else "train",
                    source="meld",
                    group=f"meld-{file_split}-dlg-{dialogue}",
                    text=_clean_text(row["Utterance"]),
                )
            )
    return items


def ravdess_items(root: Path) -> list[Item]:
    folder = _folder(root, "ravdess_speech")
    items = []
    for row in _read_csv(folder / "labels.csv"):
        actor, path = int(row["actor"]), folder / row["path"]
        items.append(
            Item(
                id=f"ravdess-{path.stem}",
                modality=Modality.AUDIO,
                label=_ekman(row["emotion"], RAVDESS_TO_EKMAN),
                split="test" if actor in RAVDESS_TEST_ACTORS else "val" if actor in RAVDESS_VAL_ACTORS else "train",
                source="ravdess",
                group=f"ravdess-actor-{actor:02d}",
                path=path,
            )
        )
    return items


def emodb_items(root: Path) -> list[Item]:
    folder = _folder(root, "emodb")
    items, bored = [], 0
    for row in _read_csv(folder / "labels.csv"):
        if row["emotion"] == "boredom":
            bored += 1
            continue
        speaker, path = row["speaker"], folder / row["file"]
        items.append(
            Item(
                id=f"emodb-{path.stem}",
                modality=Modality.AUDIO,
                label=_ekman(row["emotion"], {}),
                split="test" if speaker in EMODB_TEST_SPEAKERS else "val" if speaker in EMODB_VAL_SPEAKERS else "train",
                source="emodb",
                group=f"emodb-speaker-{speaker}",
                path=path,
            )
        )
    log.info("EmoDB: dropped %d boredom clips", bored)
    return items


@dataclass(frozen=True)
class _Face:
    path: Path
    label: str
    usage: str  # Training | PublicTest
    group: str  # the pixels' hash: exact duplicates share it


def _scan_faces(folder: Path) -> tuple[list[_Face], int]:
    """Decode every listed image once: drop the blank ones and key the rest by their pixels."""
    faces, blank = [], 0
    for row in _read_csv(folder / "labels.csv"):
        if row["fer2013_usage"] not in ("Training", "PublicTest"):
            raise ValueError(f"FER-2013: unexpected usage {row['fer2013_usage']!r} for {row['path']}")
        path = folder / row["path"]
        with Image.open(path) as image:
            pixels = np.asarray(image)
        if pixels.std() < FER_BLANK_STD:
            blank += 1
            continue
        digest = hashlib.blake2b(pixels.tobytes(), digest_size=8).hexdigest()
        faces.append(_Face(path, _ekman(row["label"], _FER), row["fer2013_usage"], f"fer-px-{digest}"))
    return faces, blank


def _face_item(face: _Face, split: str) -> Item:
    # The label folder is part of the id: two Training file names occur under two labels with different pixels.
    return Item(
        id=f"fer-{face.path.parent.name}-{face.path.stem}",
        modality=Modality.VISION,
        label=face.label,
        split=split,
        source="fer2013",
        group=face.group,
        path=face.path,
    )


def fer2013_items(root: Path) -> list[Item]:
    faces, blank = _scan_faces(_folder(root, "fer2013"))
    test = [face for face in faces if face.usage == "PublicTest"]
    training = [face for face in faces if face.usage == "Training"]
    test_groups = {face.group for face in test}
    labels_of = defaultdict(set)
    for face in training:
        labels_of[face.group].add(face.label)
    # Training copies of a test image would leak it; an image filed under two labels has no answer.
    usable = [face for face in training if face.group not in test_groups and len(labels_of[face.group]) == 1]
    # Val is drawn over groups, per label, so duplicates never straddle train and val.
    groups_by_label = defaultdict(set)
    for face in usable:
        groups_by_label[face.label].add(face.group)
    rng = np.random.default_rng(SEED)
    val_groups = set().union(*(_held_out(groups_by_label[label], VAL_FRACTION, rng) for label in EKMAN))
    copies = sum(face.group in test_groups for face in training)
    log.info(
        "FER-2013: dropped %d blank images, %d Training copies of PublicTest images, %d with conflicting labels",
        blank,
        copies,
        len(training) - copies - len(usable),
    )
    return [_face_item(face, "test") for face in test] + [
        _face_item(face, "val" if face.group in val_groups else "train") for face in usable
    ]


def all_items(root: Path) -> list[Item]:
    items = goemotions_items(root) + meld_items(root) + ravdess_items(root) + emodb_items(root) + fer2013_items(root)
    duplicates = [key for key, count in Counter(item.id for item in items).items() if count > 1]
    if duplicates:
        raise ValueError(f"{len(duplicates)} item ids occur more than once, e.g. {duplicates[:3]}")
    return items


def subsample(items: Sequence[Item], per_label_split: int, seed: int = 0) -> list[Item]:
    """At most ``per_label_split`` items per (source, split, label), seeded, in the input order."""
    buckets: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        buckets[(item.source, item.split, item.label)].append(index)
    rng = np.random.default_rng(seed)
    keep: set[int] = set()
    for key in sorted(buckets):
        indices = buckets[key]
        keep.update(
            rng.choice(indices, size=per_label_split, replace=False) if len(indices) > per_label_split else indices
        )
    return [item for index, item in enumerate(items) if index in keep]


def write_manifest(items: Sequence[Item], path: Path) -> None:
    """The CSV read by ``python -m mculora.data.extract``: one row per item, its file in the audio or image column."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for item in items:
            file = str(item.path) if item.path is not None else ""
            writer.writerow(
                {
                    "id": item.id,
                    "label": item.label,
                    "text": item.text if item.modality is Modality.TEXT else "",
                    "audio": file if item.modality is Modality.AUDIO else "",
                    "image": file if item.modality is Modality.VISION else "",
                    "split": item.split,
                    "source": item.source,
                }
            )
