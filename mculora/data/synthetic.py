"""A synthetic data set in the GCNet/MoMKE on-disk layout, for tests and smoke runs without the real features.

Each modality carries a different, partial part of the label, so the seven test conditions differ and fusion pays:
- classification: class c splits into two factors, c // m (audio) and c % m (vision) with m = ceil(C / 2). Either
  alone narrows c to a few classes; together they identify it. Text sees c itself, through heavy noise.
- regression: the score is the clipped sum of three independent components, one per modality (text the noisiest).
The signal lives in a random low-dimensional subspace of each feature space, under isotropic Gaussian noise, so it
is not axis-aligned. Some audio files are (T, D) sequences and some vision entries directories of per-face files
(both pool back to the utterance vector), and a few vision files are missing, to exercise every path of the loader.

Usage: python -m mculora.data.synthetic --out DIR [--dataset iemocap4] [--dialogues 60] [--seed 0] [--dims 64 96 80]
"""

from __future__ import annotations

import argparse
import math
import pickle
import shutil
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mculora.data.gcnet import DATASETS, DEFAULT_FEATURES, DatasetSpec, load_corpus
from mculora.modalities import MODALITIES, Modality

LATENT_DIM = 8
# Scale of the class/score signal relative to unit feature noise: audio and vision factors are decoded almost
# perfectly, text only moderately.
SIGNAL = {Modality.AUDIO: 1.5, Modality.TEXT: 0.5, Modality.VISION: 1.5}
UTTERANCES_PER_DIALOGUE = (8, 24)
SEQUENCE_FRACTION = 0.3  # audio utterances written as (T, D) frame sequences
FACE_DIRECTORY_FRACTION = 0.03  # vision utterances written as a directory of per-face files
MISSING_VISION_FRACTION = 0.02  # vision utterances with no file at all
# Marks a folder this module wrote, so that a rerun may replace it without risking someone's real data.
MARKER = "SYNTHETIC_GCNET_LAYOUT.txt"


@dataclass
class _Dialogue:
    name: str
    utterances: list[str]
    speakers: list[str]


def write_synthetic(
    out: Path,
    dataset: str = "iemocap4",
    dialogues: int = 60,
    seed: int = 0,
    dims: Sequence[int] = (64, 96, 80),
    lengths: tuple[int, int] = UTTERANCES_PER_DIALOGUE,
) -> Path:
    """Write a synthetic `dataset` (a key of DATASETS) under `out` in the GCNet layout; returns `out`. ``lengths``:
    the fewest and most utterances per dialogue (IEMOCAP's 4-way set averages 37)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if len(dims) != len(MODALITIES):
        raise ValueError(f"dims needs one size per modality (audio, text, vision), got {list(dims)}")
    spec = DATASETS[dataset]
    out = Path(out)
    _prepare_output(out)
    rng = np.random.default_rng(seed)

    corpus = (_iemocap_dialogues if spec.folds == "session" else _video_dialogues)(dialogues, rng, lengths)
    utterances = [u for d in corpus for u in d.utterances]
    labels, signals = _labels_and_signals(spec, len(utterances), rng)
    for modality, dim in zip(MODALITIES, dims, strict=True):
        vectors = _embed(signals[modality], dim, rng)
        _write_features(out / "features" / DEFAULT_FEATURES[modality], modality, utterances, vectors, rng)

    label_of = dict(zip(utterances, labels.tolist(), strict=True))
    _write_label_pickle(out / spec.label_file, spec, corpus, label_of, rng)
    (out / MARKER).write_text(f"synthetic {dataset}, seed {seed}; written by mculora.data.synthetic\n")
    return out


def _prepare_output(out: Path) -> None:
    features = out / "features"
    if features.exists() and any(features.iterdir()):
        if not (out / MARKER).exists():
            raise FileExistsError(f"{features} already holds data not written by this generator; choose an empty --out")
        # Our own earlier output, possibly of another data set: replace it all, so no stale files linger.
        shutil.rmtree(features)
        for spec in DATASETS.values():
            (out / spec.label_file).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _iemocap_dialogues(count: int, rng: np.random.Generator, lengths: tuple[int, int]) -> list[_Dialogue]:
    """IEMOCAP-like dialogues 'Ses0{s}{F|M}_{impro|script}0{n}', spread round-robin over the 5 sessions."""
    per_session = [(gender, kind, n) for gender in "FM" for kind in ("impro", "script") for n in range(1, 10)]
    if not 5 <= count <= 5 * len(per_session):
        raise ValueError(f"IEMOCAP-like data needs 5..{5 * len(per_session)} dialogues (5 sessions), got {count}")
    names = []
    for session in range(1, 6):
        wanted = len(range(session - 1, count, 5))
        for index in rng.permutation(len(per_session))[:wanted]:
            gender, kind, n = per_session[index]
            names.append(f"Ses0{session}{gender}_{kind}0{n}")
    dialogues = []
    for name in sorted(names):
        speakers = _speaker_turns(rng, lengths)
        counters = {"F": 0, "M": 0}
        utterances = []
        for speaker in speakers:  # IEMOCAP numbers each speaker's turns separately: _F000, _M000, _F001, ...
            utterances.append(f"{name}_{speaker}{counters[speaker]:03d}")
            counters[speaker] += 1
        dialogues.append(_Dialogue(name, utterances, speakers))
    return dialogues


def _speaker_turns(rng: np.random.Generator, lengths: tuple[int, int]) -> list[str]:
    length = int(rng.integers(lengths[0], lengths[1] + 1))
    speaker = str(rng.choice(["F", "M"]))
    turns = []
    for _ in range(length):
        turns.append(speaker)
        if rng.random() < 0.7:  # mostly alternating, sometimes two turns in a row
            speaker = "M" if speaker == "F" else "F"
    return turns


def _video_dialogues(count: int, rng: np.random.Generator, lengths: tuple[int, int]) -> list[_Dialogue]:
    """MOSI-like videos with YouTube-like ids; utterances '<id>_1', '<id>_2', ... ('_1' is a prefix of '_10')."""
    if count < 3:
        raise ValueError(f"MOSI-like data needs at least 3 videos (train/val/test), got {count}")
    alphabet = list(string.ascii_letters + string.digits + "-_")
    names = sorted({"".join(rng.choice(alphabet, size=11)) for _ in range(count)})
    dialogues = []
    for name in names:
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        dialogues.append(_Dialogue(name, [f"{name}_{k}" for k in range(1, length + 1)], [""] * length))
    return dialogues


def _labels_and_signals(
    spec: DatasetSpec, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[Modality, np.ndarray]]:
    """Labels and, per modality, the latent signal [count, LATENT_DIM] that its features will carry."""
    if spec.task == "regression":
        components = {m: rng.standard_normal(count) for m in MODALITIES}
        # The sum has std sqrt(3); scaled by 0.9 it spans most of MOSI's [-3, 3] with few clipped scores.
        labels = np.clip(0.9 * sum(components.values()), -3.0, 3.0)
        signals = {}
        for modality in MODALITIES:
            direction = rng.standard_normal(LATENT_DIM)
            direction *= SIGNAL[modality] * math.sqrt(LATENT_DIM) / np.linalg.norm(direction)
            signals[modality] = components[modality][:, None] * direction
        return labels, signals

    classes = len(spec.label_names)
    radix = math.ceil(classes / 2)
    labels = rng.integers(0, classes, size=count)
    # (factor of each utterance, number of values the factor takes) per modality
    factors = {
        Modality.AUDIO: (labels // radix, math.ceil(classes / radix)),
        Modality.TEXT: (labels, classes),
        Modality.VISION: (labels % radix, radix),
    }
    signals = {}
    for modality, (factor, values) in factors.items():
        # Orthogonal prototypes: every pair of factor values is equally far apart, whatever the seed.
        orthonormal, _ = np.linalg.qr(rng.standard_normal((LATENT_DIM, values)))
        prototypes = orthonormal.T * SIGNAL[modality] * math.sqrt(LATENT_DIM)
        signals[modality] = prototypes[factor]
    return labels, signals


def _embed(signal: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Random linear map of the latent signal into `dim` features, plus unit Gaussian noise.

    The map roughly preserves norms, so how separable the classes are is set by SIGNAL, not by `dim`.
    """
    basis = rng.standard_normal((signal.shape[1], dim)) / math.sqrt(dim)
    return (signal @ basis + rng.standard_normal((signal.shape[0], dim))).astype(np.float32)


def _write_features(
    folder: Path, modality: Modality, utterances: list[str], vectors: np.ndarray, rng: np.random.Generator
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(utterances)).tolist()
    missing, faces, sequences = set(), set(), set()
    if modality is Modality.VISION:
        n_missing = max(2, round(MISSING_VISION_FRACTION * len(utterances)))
        n_faces = max(2, round(FACE_DIRECTORY_FRACTION * len(utterances)))
        missing, faces = set(order[:n_missing]), set(order[n_missing : n_missing + n_faces])
    elif modality is Modality.AUDIO:
        sequences = set(order[: round(SEQUENCE_FRACTION * len(utterances))])

    for index, (utterance, vector) in enumerate(zip(utterances, vectors, strict=True)):
        if index in missing:
            continue  # no file: the loader must mark this modality unavailable here
        if index in faces:
            face_folder = folder / utterance
            face_folder.mkdir()
            # IEMOCAP face files carry their speaker's letter, by which the loader assigns faces to speakers.
            speaker = utterance.rsplit("_", 1)[-1][:1]
            prefix = speaker if speaker in ("F", "M") else "face"
            for k, face in enumerate(_around(vector, int(rng.integers(2, 4)), rng)):
                np.save(face_folder / f"{prefix}{k:02d}.npy", face)
        elif index in sequences:
            np.save(folder / f"{utterance}.npy", _around(vector, int(rng.integers(3, 9)), rng))
        else:
            np.save(folder / f"{utterance}.npy", vector)


def _around(vector: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` rows whose mean is `vector`: frames of a sequence, or the faces of one utterance."""
    jitter = rng.standard_normal((count, vector.shape[0])).astype(np.float32)
    return vector + (jitter - jitter.mean(axis=0))


def _write_label_pickle(
    path: Path, spec: DatasetSpec, corpus: list[_Dialogue], label_of: dict[str, object], rng: np.random.Generator
) -> None:
    ids = {d.name: list(d.utterances) for d in corpus}
    labels = {d.name: [label_of[u] for u in d.utterances] for d in corpus}
    speakers = {d.name: list(d.speakers) for d in corpus}
    sentences = {d.name: [f"synthetic sentence {k}" for k in range(len(d.utterances))] for d in corpus}
    names = [d.name for d in corpus]
    if spec.folds == "session":
        # Like the GCNet IEMOCAP pickle: sets, sessions 1-4 train and session 5 test.
        test = {name for name in names if name[4] == "5"}
        content = [ids, labels, speakers, sentences, set(names) - test, test]
    else:
        # Like the MOSI pickle (52/10/31 videos): lists for train, val and test.
        shuffled = [names[i] for i in rng.permutation(len(names))]
        n_test = max(1, round(len(names) / 3))
        n_val = max(1, round(len(names) / 9))
        content = [ids, labels, speakers, sentences, shuffled[n_test + n_val :], shuffled[n_test : n_test + n_val]]
        content.append(shuffled[:n_test])
    with path.open("wb") as handle:
        pickle.dump(content, handle, protocol=2)  # protocol 2 is what Python 2 wrote


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic data set in the GCNet/MoMKE feature layout.")
    parser.add_argument("--out", type=Path, required=True, help="data root to write (created if needed)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="iemocap4")
    parser.add_argument("--dialogues", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dims", type=int, nargs=3, default=[64, 96, 80], metavar=("AUDIO", "TEXT", "VISION"))
    args = parser.parse_args(argv)

    root = write_synthetic(args.out, args.dataset, args.dialogues, args.seed, args.dims)
    # Reading it back through the real loader both checks the layout and gives the counts to report.
    corpus = load_corpus(args.dataset, root)
    utterances = sum(len(d) for d in corpus.dialogues.values())
    missing = " ".join(
        f"{m.letter}={sum(int((~d.available[m]).sum()) for d in corpus.dialogues.values())}" for m in MODALITIES
    )
    dims = " ".join(f"{m.letter}={corpus.feature_dims[m]}" for m in MODALITIES)
    print(f"wrote synthetic {args.dataset} to {root}")
    print(f"  {len(corpus.dialogues)} dialogues, {utterances} utterances, dims {dims}, missing files {missing}")
    print(
        f"  given split: {len(corpus.given_train)} train / {len(corpus.given_val)} val / {len(corpus.given_test)} test"
    )


if __name__ == "__main__":
    main()
