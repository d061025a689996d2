"""Loader for the GCNet/MoMKE feature release: the pooled utterance features of IEMOCAP, CMU-MOSI and CMU-MOSEI
that the MCULoRA paper and its reference code train on.

Layout of one data set's root ROOT:

    ROOT/<label pickle>                        dialogue ids, labels, speakers, sentences and the given split
    ROOT/features/<feature folder>/<utt>.npy   float32 (D,) or (T, D); or a directory <utt>/ of such files

Everything is read into memory once: the released corpora are a few thousand utterances of pooled vectors.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mculora.modalities import MODALITIES, Modality

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    label_file: str
    task: str  # "classification" | "regression"
    label_names: tuple[str, ...]
    folds: str  # "session": leave-one-session-out (IEMOCAP) | "given": the pickle's own split (MOSI/MOSEI)
    # Data sets written by `mculora.data.extract` say which encoders made their features (and so which folders to read).
    encoder_profile: str = "features"
    feature_folders: tuple[tuple[str, str], ...] = ()  # (modality, folder) pairs; empty = DEFAULT_FEATURES
    feature_dims: tuple[tuple[str, int], ...] = ()  # (modality, dim) pairs, so a modality with no files still loads


SPEC_FILE = "dataset.json"


def read_spec_file(root: Path) -> DatasetSpec:
    """The `DatasetSpec` of a data set that describes itself in ROOT/dataset.json (see `mculora.data.extract`)."""
    path = root / SPEC_FILE
    try:
        data = json.loads(path.read_text())
        return DatasetSpec(
            name=str(data["name"]),
            label_file=str(data["label_file"]),
            task=str(data["task"]),
            label_names=tuple(data["label_names"]),
            folds=str(data.get("folds", "given")),
            encoder_profile=str(data.get("encoder_profile", "features")),
            feature_folders=tuple(sorted(data.get("feature_folders", {}).items())),
            feature_dims=tuple(sorted((k, int(v)) for k, v in data.get("feature_dims", {}).items())),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a valid data set description ({error})") from None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        # Class order of the GCNet pickles: 0 = happy (+ excited in the 4-way file), 1 = sad, 2 = neutral, 3 = angry.
        DatasetSpec(
            "iemocap4",
            "IEMOCAP_features_raw_4way.pkl",
            "classification",
            ("happy", "sad", "neutral", "angry"),
            "session",
        ),
        DatasetSpec(
            "iemocap6",
            "IEMOCAP_features_raw_6way.pkl",
            "classification",
            ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
            "session",
        ),
        DatasetSpec("mosi", "CMUMOSI_features_raw_2way.pkl", "regression", ("sentiment",), "given"),
        DatasetSpec("mosei", "CMUMOSEI_features_raw_2way.pkl", "regression", ("sentiment",), "given"),
    )
}

DEFAULT_FEATURES: dict[Modality, str] = {
    Modality.AUDIO: "wav2vec-large-c-UTT",
    Modality.TEXT: "deberta-large-4-UTT",
    Modality.VISION: "manet_UTT",
}

# IEMOCAP speakers are 'F'/'M'; MOSI/MOSEI have a single, unnamed speaker ('').
_SPEAKER_INDEX = {"F": 0, "M": 1, "": 0}


@dataclass
class Dialogue:
    name: str
    utterances: list[str]
    features: dict[Modality, np.ndarray]  # float32 [L, D_m]; zero where unavailable
    available: dict[Modality, np.ndarray]  # bool [L]: the feature file existed
    labels: np.ndarray  # int64 [L] (classification) or float32 [L] (regression)
    speakers: np.ndarray  # int64 [L]

    def __len__(self) -> int:
        return len(self.utterances)


@dataclass
class Split:
    name: str
    train: list[str]
    val: list[str]
    test: list[str]


@dataclass
class FeatureCorpus:
    spec: DatasetSpec
    dialogues: dict[str, Dialogue]
    feature_dims: dict[Modality, int]
    given_train: list[str]
    given_val: list[str]
    given_test: list[str]
    feature_folders: dict[Modality, str]  # the folder read for each modality
    root: Path | None = None  # the data set's folder: trained encoders' weights, if any, lie there

    def splits(self, val_fraction: float = 0.1, seed: int = 0) -> list[Split]:
        """Train/val/test dialogue names for every fold of the data set's protocol.

        Validation is always carved from training dialogues (never from test), so model selection and DPFT statistics do
        not see the test set (the reference code selects on test: README.md, "Protocol"). val_fraction = 0 gives an
        empty val.
        """
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if self.spec.folds == "session":
            return self._session_splits(val_fraction, seed)
        val = list(self.given_val)
        train = list(self.given_train)
        if not val:
            train, val = _carve_validation(train, val_fraction, np.random.default_rng(seed))
        return [Split("given", train, val, list(self.given_test))]

    def _session_splits(self, val_fraction: float, seed: int) -> list[Split]:
        by_session: dict[str, list[str]] = {}
        for name in sorted(self.dialogues):
            by_session.setdefault(session_of(name), []).append(name)
        if len(by_session) < 2:
            raise ValueError(
                f"{self.spec.name}: leave-one-session-out needs at least 2 sessions, found {sorted(by_session)}"
            )
        splits = []
        for index, session in enumerate(sorted(by_session)):
            rest = [name for name in sorted(self.dialogues) if session_of(name) != session]
            # Seed per fold so that the folds' validation sets are independent draws.
            train, val = _carve_validation(rest, val_fraction, np.random.default_rng([seed, index]))
            splits.append(Split(f"fold{session}", train, val, by_session[session]))
        return splits


def session_of(dialogue: str) -> str:
    """IEMOCAP session digit of a dialogue name such as 'Ses01F_impro01' (character 4, as the reference code)."""
    if len(dialogue) < 5 or not dialogue[4].isdigit():
        raise ValueError(f"dialogue {dialogue!r} is not an IEMOCAP name like 'Ses01F_impro01'; cannot tell its session")
    return dialogue[4]


def _carve_validation(names: list[str], fraction: float, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Split names into (train, val) with a random `fraction` (at least one dialogue) in val; order is kept."""
    if fraction == 0.0:
        return list(names), []
    count = max(1, round(fraction * len(names)))
    if count >= len(names):
        raise ValueError(f"validation fraction {fraction} of {len(names)} dialogues leaves nothing to train on")
    chosen = set(rng.choice(len(names), size=count, replace=False).tolist())
    train = [name for i, name in enumerate(names) if i not in chosen]
    val = [name for i, name in enumerate(names) if i in chosen]
    return train, val


def load_corpus(dataset: str, data_root: str | Path, features: Mapping[Modality, str] | None = None) -> FeatureCorpus:
    """Read one data set's label pickle and its three feature folders.

    `features` overrides folder names per modality (the rest keep DEFAULT_FEATURES). An utterance without a feature
    file keeps zeros and available=False for that modality; a missing folder or label file is an error.
    """
    root = Path(data_root)
    if dataset in DATASETS:
        spec = DATASETS[dataset]
    elif (root / SPEC_FILE).is_file():
        spec = read_spec_file(root)
        if spec.name != dataset:
            raise ValueError(f"{root / SPEC_FILE} describes data set {spec.name!r}, not {dataset!r}")
    else:
        raise ValueError(
            f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}, "
            f"or a data root with a {SPEC_FILE} (written by mculora.data.extract)"
        )
    if not root.is_dir():
        raise FileNotFoundError(
            f"data root for {dataset} not found: {root} (expected a folder holding {spec.label_file})"
        )
    label_path = root / spec.label_file
    if not label_path.is_file():
        present = sorted(p.name for p in root.glob("*.pkl"))
        hint = f"; label files present there: {', '.join(present)}" if present else ""
        raise FileNotFoundError(f"label file for {dataset} not found: {label_path}{hint}")
    own_folders = {Modality(m): folder for m, folder in spec.feature_folders}
    folders = {**DEFAULT_FEATURES, **own_folders, **(features or {})}
    feature_paths = {m: root / "features" / folders[m] for m in MODALITIES}
    for modality, path in feature_paths.items():
        if not path.is_dir():
            raise FileNotFoundError(f"{modality.value} feature folder for {dataset} not found: {path}")

    labels_file = _read_label_pickle(label_path)
    names = sorted(labels_file.ids)
    utterances = {name: [str(u) for u in labels_file.ids[name]] for name in names}
    known_dims = {Modality(m): dim for m, dim in spec.feature_dims}
    speaker_of = {
        str(u): str(s)
        for name in names
        for u, s in zip(labels_file.ids[name], labels_file.speakers[name], strict=False)
    }
    loaded = {
        m: _load_modality(feature_paths[m], utterances, speaker_of, dataset, known_dims.get(m)) for m in MODALITIES
    }
    dialogues = {
        name: Dialogue(
            name=name,
            utterances=utterances[name],
            features={m: loaded[m].features[name] for m in MODALITIES},
            available={m: loaded[m].available[name] for m in MODALITIES},
            labels=_labels(labels_file.labels[name], spec, name),
            speakers=_speakers(labels_file.speakers[name]),
        )
        for name in names
    }
    for name, dialogue in dialogues.items():
        if not len(dialogue.labels) == len(dialogue.speakers) == len(dialogue):
            raise ValueError(
                f"{label_path}: dialogue {name} has {len(dialogue)} utterances, {len(dialogue.labels)} labels "
                f"and {len(dialogue.speakers)} speakers"
            )

    train, val, test = (_known_dialogues(split, dialogues, label_path) for split in labels_file.given_split)
    if set(test) & (set(train) | set(val)):
        raise ValueError(f"{label_path}: the given test split overlaps the training or validation split")
    dims = {m: loaded[m].dim for m in MODALITIES}
    return FeatureCorpus(spec, dialogues, dims, train, val, test, {m: folders[m] for m in MODALITIES}, root)


@dataclass
class _ModalityFeatures:
    features: dict[str, np.ndarray]  # dialogue -> float32 [L, D]
    available: dict[str, np.ndarray]  # dialogue -> bool [L]
    dim: int


def _load_modality(
    folder_path: Path,
    utterances: Mapping[str, list[str]],
    speaker_of: Mapping[str, str],
    dataset: str,
    known_dim: int | None,
) -> _ModalityFeatures:
    all_utterances = {u for names in utterances.values() for u in names}
    folder = _FeatureFolder(folder_path, all_utterances)
    vectors = {u: folder.read(u, speaker_of.get(u)) for u in sorted(all_utterances)}
    dim = _common_dim(vectors, folder_path, dataset, known_dim)
    missing = sum(v is None for v in vectors.values())
    if missing:
        log.warning("%s: %d of %d utterances have no feature in %s", dataset, missing, len(vectors), folder_path)
    features, available = {}, {}
    for dialogue, names in utterances.items():
        features[dialogue] = np.zeros((len(names), dim), dtype=np.float32)
        available[dialogue] = np.array([vectors[u] is not None for u in names], dtype=bool)
        for row, name in enumerate(names):
            if vectors[name] is not None:
                features[dialogue][row] = vectors[name]
    return _ModalityFeatures(features, available, dim)


@dataclass
class _LabelFile:
    ids: dict[str, list[str]]
    labels: dict[str, list[Any]]
    speakers: dict[str, list[str]]
    given_split: tuple[Iterable[str], Iterable[str], Iterable[str]]  # train, val, test


def _read_label_pickle(path: Path) -> _LabelFile:
    # The pickles were written by Python 2; latin1 decodes their byte strings (and numpy arrays) losslessly.
    with path.open("rb") as handle:
        content = pickle.load(handle, encoding="latin1")
    if not isinstance(content, list | tuple) or len(content) not in (6, 7):
        raise ValueError(
            f"{path}: expected a 6-element (IEMOCAP) or 7-element (MOSI/MOSEI) list, got {type(content).__name__}"
            + (f" of length {len(content)}" if isinstance(content, list | tuple) else "")
        )
    if len(content) == 6:  # videoIDs, videoLabels, videoSpeakers, videoSentences, trainVid, testVid
        ids, labels, speakers, _sentences, train, test = content
        val: Iterable[str] = []
    else:  # videoIDs, videoLabels, videoSpeakers, videoSentences, trainVids, valVids, testVids
        ids, labels, speakers, _sentences, train, val, test = content
    for field_name, value in (("videoIDs", ids), ("videoLabels", labels), ("videoSpeakers", speakers)):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: {field_name} should be a dict keyed by dialogue, got {type(value).__name__}")
    return _LabelFile(ids, labels, speakers, (train, val, test))


def _known_dialogues(names: Iterable[str], dialogues: Mapping[str, Dialogue], label_path: Path) -> list[str]:
    # Sorted, because the given splits are sets in the IEMOCAP pickle and their iteration order is arbitrary.
    result = sorted(str(name) for name in names)
    unknown = [name for name in result if name not in dialogues]
    if unknown:
        raise ValueError(f"{label_path}: split lists dialogues missing from videoIDs: {unknown[:5]}")
    return result


def _labels(values: Iterable[Any], spec: DatasetSpec, dialogue: str) -> np.ndarray:
    if spec.task == "regression":
        labels = np.asarray(list(values), dtype=np.float32)
        if not np.isfinite(labels).all():
            raise ValueError(f"{spec.name}: dialogue {dialogue} has non-finite labels")
        return labels
    labels = np.asarray(list(values), dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(spec.label_names)):
        raise ValueError(
            f"{spec.name}: dialogue {dialogue} has labels outside 0..{len(spec.label_names) - 1}: "
            f"{sorted(set(labels.tolist()))}; is this the right label file for the data set?"
        )
    return labels


def _speakers(values: Iterable[Any]) -> np.ndarray:
    """IEMOCAP's 'F'/'M' -> 0/1 and MOSI's '' -> 0; other speaker ids (extracted data sets) are numbered in order of
    first appearance within the dialogue."""
    speakers = [str(s) for s in values]
    if set(speakers) <= set(_SPEAKER_INDEX):
        return np.array([_SPEAKER_INDEX[s] for s in speakers], dtype=np.int64)
    order = {s: i for i, s in enumerate(dict.fromkeys(speakers))}
    return np.array([order[s] for s in speakers], dtype=np.int64)


class _FeatureFolder:
    """A feature folder listed once, answering the reference loader's `glob('<utt>*')` by binary search.

    Folders hold 10^4+ entries, so one glob per utterance would be quadratic. An exact entry (<utt>.npy, or a
    directory <utt>) wins. Otherwise a single entry starting with <utt> is taken, ignoring entries that exactly
    name another utterance: MOSI's '<video>_1' is a prefix of '<video>_10', and a missing '_1' must stay missing.
    """

    def __init__(self, path: Path, utterances: set[str]) -> None:
        self.path = path
        self._entries = sorted(os.listdir(path))
        self._entry_set = set(self._entries)
        self._utterances = utterances

    def find(self, utterance: str) -> Path | None:
        for exact in (f"{utterance}.npy", utterance):
            if exact in self._entry_set:
                return self.path / exact
        candidates = []
        for entry in self._entries[bisect.bisect_left(self._entries, utterance) :]:
            if not entry.startswith(utterance):
                break
            if _stem(entry) not in self._utterances:
                candidates.append(entry)
        if len(candidates) > 1:
            raise ValueError(f"{self.path}: several feature entries match utterance {utterance!r}: {candidates[:5]}")
        return self.path / candidates[0] if candidates else None

    def read(self, utterance: str, speaker: str | None = None) -> np.ndarray | None:
        """Pooled float32 (D,) feature of an utterance, or None when it has none."""
        path = self.find(utterance)
        if path is None:
            return None
        if not path.is_dir():
            return _pool(np.load(path), path)
        # A directory holds one file per detected face. In IEMOCAP both actors are on screen: as in the reference
        # loader, a face whose file name contains "F" belongs to the female speaker and any other to the male one,
        # and the utterance takes the average of its own speaker's faces. No face of the speaker = no feature
        # (the reference fills zeros and still counts it as present). Other corpora average every face.
        files = sorted(path.glob("*.npy"))
        if speaker in ("F", "M"):
            files = [file for file in files if ("F" in file.name) == (speaker == "F")]
        faces = [_pool(np.load(file), file) for file in files]
        if not faces:
            return None
        if len({face.shape for face in faces}) > 1:
            raise ValueError(f"{path}: face features have different dimensions {sorted({f.shape for f in faces})}")
        return np.mean(faces, axis=0, dtype=np.float32)


def _stem(entry: str) -> str:
    return entry[: -len(".npy")] if entry.endswith(".npy") else entry


def _pool(array: np.ndarray, path: Path) -> np.ndarray:
    """(D,), (1, D) or (T, D) -> float32 (D,); sequences are mean-pooled over time, as the reference loader does."""
    if array.ndim == 0 or array.size == 0:
        raise ValueError(f"{path}: empty feature of shape {array.shape}")
    return array.reshape(-1, array.shape[-1]).astype(np.float32).mean(axis=0)


def _common_dim(vectors: Mapping[str, np.ndarray | None], folder: Path, dataset: str, known_dim: int | None) -> int:
    dims = {u: v.shape[0] for u, v in vectors.items() if v is not None}
    if known_dim is not None:
        wrong = [u for u, d in dims.items() if d != known_dim]
        if wrong:
            raise ValueError(f"{folder}: {wrong[0]} has dimension {dims[wrong[0]]}, the data set says {known_dim}")
        return known_dim
    if not dims:
        raise ValueError(f"{dataset}: no feature file in {folder} matches any of the {len(vectors)} utterances")
    first, dim = next(iter(dims.items()))
    for utterance, other in dims.items():
        if other != dim:
            raise ValueError(f"{folder}: feature dimensions differ, {first} has {dim} but {utterance} has {other}")
    return dim
