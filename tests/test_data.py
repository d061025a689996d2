"""Data layer: GCNet-layout loading, folds, batching and the synthetic generator."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mculora.data import (
    DATASETS,
    DEFAULT_FEATURES,
    DialogueDataset,
    collate_dialogues,
    load_corpus,
)
from mculora.data.gcnet import session_of
from mculora.data.synthetic import main as synthetic_main
from mculora.data.synthetic import write_synthetic
from mculora.modalities import MODALITIES, Modality

DIMS = (12, 20, 16)


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("iemocap4"), "iemocap4", dialogues=30, seed=1, dims=DIMS)


@pytest.fixture(scope="module")
def mosi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("mosi"), "mosi", dialogues=20, seed=2, dims=DIMS)


def _read_pickle(path: Path) -> list:
    with path.open("rb") as handle:
        return pickle.load(handle, encoding="latin1")


def _pooled(path: Path) -> np.ndarray:
    array = np.load(path)
    return array.reshape(-1, array.shape[-1]).mean(axis=0)


def _expected_vector(folder: Path, utterance: str) -> np.ndarray | None:
    """What the loader should return, computed straight from the files: pool (T, D), average face directories."""
    file, directory = folder / f"{utterance}.npy", folder / utterance
    if file.exists():
        return _pooled(file)
    if directory.is_dir():
        return np.mean([_pooled(face) for face in sorted(directory.iterdir())], axis=0)
    return None


# --- on-disk layout written by the generator -------------------------------------------------------------------


def test_iemocap_pickle_has_the_gcnet_element_order(iemocap_root: Path) -> None:
    content = _read_pickle(iemocap_root / "IEMOCAP_features_raw_4way.pkl")
    assert isinstance(content, list) and len(content) == 6
    ids, labels, speakers, sentences, train, test = content
    assert all(isinstance(x, dict) for x in (ids, labels, speakers, sentences))
    assert isinstance(train, set) and isinstance(test, set)
    assert train | test == set(ids) and not train & test
    assert {name[4] for name in test} == {"5"}
    for name, utterances in ids.items():
        assert len(labels[name]) == len(speakers[name]) == len(sentences[name]) == len(utterances)
        assert all(isinstance(label, int) and 0 <= label < 4 for label in labels[name])
        assert set(speakers[name]) <= {"F", "M"}
        # Utterance names are '<dialogue>_<speaker><nnn>' and carry their speaker.
        assert [u[len(name) + 1] for u in utterances] == speakers[name]


def test_mosi_pickle_has_seven_elements_with_float_labels(mosi_root: Path) -> None:
    content = _read_pickle(mosi_root / "CMUMOSI_features_raw_2way.pkl")
    assert len(content) == 7
    ids, labels, speakers, _sentences, train, val, test = content
    assert set(train) | set(val) | set(test) == set(ids)
    assert len(set(train)) + len(set(val)) + len(set(test)) == len(ids)
    all_labels = [label for name in ids for label in labels[name]]
    assert all(isinstance(label, float) and -3.0 <= label <= 3.0 for label in all_labels)
    assert {s for name in ids for s in speakers[name]} == {""}


def test_generator_exercises_sequences_face_directories_and_missing_files(iemocap_root: Path) -> None:
    audio = iemocap_root / "features" / DEFAULT_FEATURES[Modality.AUDIO]
    vision = iemocap_root / "features" / DEFAULT_FEATURES[Modality.VISION]
    assert any(np.load(f).ndim == 2 for f in audio.glob("*.npy"))
    assert any(entry.is_dir() for entry in vision.iterdir())
    utterances = [u for us in _read_pickle(iemocap_root / "IEMOCAP_features_raw_4way.pkl")[0].values() for u in us]
    assert sum(_expected_vector(vision, u) is None for u in utterances) >= 2


# --- loading -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["iemocap4", "mosi"])
def test_round_trip_matches_pickle_and_files(dataset: str, iemocap_root: Path, mosi_root: Path) -> None:
    root = iemocap_root if dataset == "iemocap4" else mosi_root
    ids, labels, speakers = _read_pickle(root / DATASETS[dataset].label_file)[:3]
    corpus = load_corpus(dataset, root)

    assert corpus.feature_dims == dict(zip(MODALITIES, DIMS, strict=True))
    assert sorted(corpus.dialogues) == sorted(ids)
    for name, dialogue in corpus.dialogues.items():
        assert dialogue.utterances == ids[name]
        if dataset == "iemocap4":
            assert dialogue.labels.dtype == np.int64
            assert dialogue.labels.tolist() == labels[name]
            assert dialogue.speakers.tolist() == [{"F": 0, "M": 1}[s] for s in speakers[name]]
        else:
            assert dialogue.labels.dtype == np.float32
            np.testing.assert_allclose(dialogue.labels, labels[name], rtol=1e-6)
            assert dialogue.speakers.tolist() == [0] * len(dialogue)
        for modality in MODALITIES:
            folder = root / "features" / DEFAULT_FEATURES[modality]
            assert dialogue.features[modality].shape == (len(dialogue), corpus.feature_dims[modality])
            assert dialogue.features[modality].dtype == np.float32
            for row, utterance in enumerate(dialogue.utterances):
                expected = _expected_vector(folder, utterance)
                assert dialogue.available[modality][row] == (expected is not None)
                if expected is None:
                    assert not dialogue.features[modality][row].any()
                else:
                    np.testing.assert_allclose(dialogue.features[modality][row], expected, rtol=1e-5, atol=1e-5)


def _write_mosi_root(
    root: Path,
    ids: dict[str, list[str]],
    given: tuple[list[str], list[str], list[str]],
    vision: dict[str, np.ndarray | list[np.ndarray]] | None = None,
) -> Path:
    """A MOSI-format root. Audio and text hold [k, k, k] for the k-th utterance; vision holds exactly `vision`
    (a list becomes a face directory), or the same as audio when None."""
    labels = {name: [0.5 * k for k in range(len(us))] for name, us in ids.items()}
    speakers = {name: [""] * len(us) for name, us in ids.items()}
    sentences = {name: ["..."] * len(us) for name, us in ids.items()}
    with (root / "CMUMOSI_features_raw_2way.pkl").open("wb") as handle:
        pickle.dump([ids, labels, speakers, sentences, *given], handle, protocol=2)
    utterances = [u for us in ids.values() for u in us]
    default = {f"{u}.npy": np.full(3, k, dtype=np.float32) for k, u in enumerate(utterances)}
    for modality in MODALITIES:
        folder = root / "features" / DEFAULT_FEATURES[modality]
        folder.mkdir(parents=True)
        entries = vision if modality is Modality.VISION and vision is not None else default
        for entry, value in entries.items():
            if isinstance(value, list):
                (folder / entry).mkdir()
                for k, face in enumerate(value):
                    np.save(folder / entry / f"F_{k}.npy", face)
            else:
                np.save(folder / entry, value)
    return root


def _tiny_root(root: Path, vision: dict[str, np.ndarray | list[np.ndarray]]) -> Path:
    """One video whose utterance names include the prefix trap 'vid_1' / 'vid_10'."""
    return _write_mosi_root(root, {"vid": ["vid_1", "vid_2", "vid_10"]}, (["vid"], [], []), vision)


def test_pooling_face_directories_prefix_glob_and_missing(tmp_path: Path) -> None:
    sequence = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)  # (T, D) -> mean [2, 4]
    faces = [np.array([0.0, 10.0], dtype=np.float32), np.array([[4.0, 0.0], [4.0, 2.0]], dtype=np.float32)]
    root = _tiny_root(
        tmp_path,
        {
            "vid_2_faces": faces,  # found by the glob '<utt>*'; faces averaged (the second one pooled first)
            "vid_10.npy": sequence,
            # 'vid_1' has no entry: 'vid_10.npy' starts with 'vid_1' but belongs to utterance vid_10.
        },
    )
    dialogue = load_corpus("mosi", root).dialogues["vid"]
    vision = dialogue.features[Modality.VISION]
    assert dialogue.available[Modality.VISION].tolist() == [False, True, True]
    np.testing.assert_allclose(vision[0], [0.0, 0.0])
    np.testing.assert_allclose(vision[1], [2.0, 5.5])
    np.testing.assert_allclose(vision[2], [2.0, 4.0])
    assert dialogue.available[Modality.AUDIO].all()
    np.testing.assert_allclose(dialogue.features[Modality.AUDIO][:, 0], [0.0, 1.0, 2.0])


def test_iemocap_face_directories_are_split_by_speaker(tmp_path: Path) -> None:
    """The reference loader's rule: a face file whose name contains "F" belongs to the female speaker, any other to
    the male one; an utterance averages its own speaker's faces, and has no feature when none of them is there."""
    from mculora.data.gcnet import _FeatureFolder

    faces = tmp_path / "Ses01F_impro01_F000"
    faces.mkdir()
    np.save(faces / "F_0.npy", np.array([2.0, 0.0], dtype=np.float32))
    np.save(faces / "F_1.npy", np.array([4.0, 0.0], dtype=np.float32))
    np.save(faces / "M_0.npy", np.array([0.0, 9.0], dtype=np.float32))
    only_female = tmp_path / "Ses01F_impro01_M000"
    only_female.mkdir()
    np.save(only_female / "F_0.npy", np.array([1.0, 1.0], dtype=np.float32))
    folder = _FeatureFolder(tmp_path, {"Ses01F_impro01_F000", "Ses01F_impro01_M000"})
    np.testing.assert_allclose(folder.read("Ses01F_impro01_F000", "F"), [3.0, 0.0])
    np.testing.assert_allclose(folder.read("Ses01F_impro01_F000", "M"), [0.0, 9.0])
    assert folder.read("Ses01F_impro01_M000", "M") is None
    np.testing.assert_allclose(folder.read("Ses01F_impro01_F000"), [2.0, 3.0])  # no speaker: every face


def test_ambiguous_prefix_match_is_an_error(tmp_path: Path) -> None:
    vector = np.zeros(2, dtype=np.float32)
    root = _tiny_root(tmp_path, {"vid_1_a.npy": vector, "vid_1_b.npy": vector, "vid_2.npy": vector})
    with pytest.raises(ValueError, match="several feature entries match utterance 'vid_1'"):
        load_corpus("mosi", root)


def test_feature_folder_override(tmp_path: Path) -> None:
    root = _tiny_root(tmp_path, {"vid_1.npy": np.ones(4, dtype=np.float32)})
    (root / "features" / DEFAULT_FEATURES[Modality.VISION]).rename(root / "features" / "openface")
    corpus = load_corpus("mosi", root, features={Modality.VISION: "openface"})
    assert corpus.feature_dims[Modality.VISION] == 4
    assert corpus.dialogues["vid"].available[Modality.VISION].tolist() == [True, False, False]


# --- errors ------------------------------------------------------------------------------------------------------


def test_wrong_root_errors_name_the_path_and_dataset(tmp_path: Path, mosi_root: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"iemocap4.*nowhere"):
        load_corpus("iemocap4", missing)
    # A MOSI root handed to IEMOCAP: the message names the expected file and lists what is there.
    with pytest.raises(FileNotFoundError, match=r"IEMOCAP_features_raw_4way\.pkl.*CMUMOSI_features_raw_2way\.pkl"):
        load_corpus("iemocap4", mosi_root)
    with pytest.raises(ValueError, match="unknown dataset 'iemocap5'"):
        load_corpus("iemocap5", mosi_root)


def test_missing_feature_folder_is_named(tmp_path: Path) -> None:
    root = _tiny_root(tmp_path, {"vid_1.npy": np.ones(2, dtype=np.float32)})
    with pytest.raises(FileNotFoundError, match=r"vision feature folder for mosi not found: .*features/other"):
        load_corpus("mosi", root, features={Modality.VISION: "other"})


def test_wrong_pickle_shape_is_rejected(tmp_path: Path) -> None:
    root = _tiny_root(tmp_path, {"vid_1.npy": np.ones(2, dtype=np.float32)})
    with (root / "CMUMOSI_features_raw_2way.pkl").open("wb") as handle:
        pickle.dump([{}, {}, {}], handle)
    with pytest.raises(ValueError, match="6-element .* or 7-element"):
        load_corpus("mosi", root)


# --- folds -------------------------------------------------------------------------------------------------------


def test_iemocap_leave_one_session_out(iemocap_root: Path) -> None:
    corpus = load_corpus("iemocap4", iemocap_root)
    splits = corpus.splits(val_fraction=0.1, seed=0)
    assert [s.name for s in splits] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    for split in splits:
        test_sessions = {session_of(name) for name in split.test}
        assert test_sessions == {split.name[-1]}
        assert split.val, "every fold needs a validation set"
        train, val, test = set(split.train), set(split.val), set(split.test)
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(corpus.dialogues)
        # All dialogues of the held-out session are tested, so none of them is in train or val.
        assert {session_of(name) for name in train | val}.isdisjoint(test_sessions)
        assert len(val) == max(1, round(0.1 * (len(train) + len(val))))
    assert corpus.splits(seed=0) == splits
    assert [s.val for s in corpus.splits(seed=1)] != [s.val for s in splits]


def test_mosi_given_split_and_carved_validation(mosi_root: Path, tmp_path: Path) -> None:
    _, _, _, _, train, val, test = _read_pickle(mosi_root / "CMUMOSI_features_raw_2way.pkl")
    corpus = load_corpus("mosi", mosi_root)
    (split,) = corpus.splits()
    assert split.name == "given"
    assert (sorted(split.train), sorted(split.val), sorted(split.test)) == (sorted(train), sorted(val), sorted(test))

    # Without a given validation split, val is carved from train and test is untouched.
    names = [f"v{k}" for k in range(10)]
    root = _write_mosi_root(tmp_path, {n: [f"{n}_1", f"{n}_2"] for n in names}, (names[:8], [], names[8:]))
    (split,) = load_corpus("mosi", root).splits(val_fraction=0.25, seed=0)
    assert split.test == names[8:]
    assert len(split.val) == 2 and sorted(split.train + split.val) == names[:8]


# --- batching ----------------------------------------------------------------------------------------------------


def test_collate_pads_and_masks(iemocap_root: Path) -> None:
    corpus = load_corpus("iemocap4", iemocap_root)
    dialogues = sorted(corpus.dialogues.values(), key=len)
    chosen = [dialogues[0], dialogues[-1], dialogues[len(dialogues) // 2]]
    lengths = [len(d) for d in chosen]
    assert len(set(lengths)) > 1, "the test needs dialogues of different lengths"

    batch = collate_dialogues(chosen)
    longest = max(lengths)
    assert batch.batch_size == 3 and batch.names == [d.name for d in chosen]
    assert batch.utterance_mask.sum(dim=1).tolist() == lengths
    assert batch.available.shape == (3, longest, 3) and batch.available.dtype == torch.bool
    assert batch.labels.shape == (3, longest) and batch.labels.dtype == torch.int64
    assert batch.speakers.dtype == torch.int64
    for row, dialogue in enumerate(chosen):
        size = len(dialogue)
        assert not batch.available[row, size:].any() and not batch.utterance_mask[row, size:].any()
        assert not batch.labels[row, size:].any()
        assert batch.labels[row, :size].tolist() == dialogue.labels.tolist()
        for column, modality in enumerate(MODALITIES):
            features = batch.features[modality]
            assert features.shape == (3, longest, corpus.feature_dims[modality]) and features.dtype == torch.float32
            assert torch.equal(features[row, :size], torch.from_numpy(dialogue.features[modality]))
            assert not features[row, size:].any()
            assert batch.available[row, :size, column].tolist() == dialogue.available[modality].tolist()
    moved = batch.to("cpu")
    assert moved.names == batch.names and torch.equal(moved.labels, batch.labels)


def test_dataloader_over_regression_dialogues(mosi_root: Path) -> None:
    corpus = load_corpus("mosi", mosi_root)
    loader = DataLoader(DialogueDataset(list(corpus.dialogues.values())), batch_size=4, collate_fn=collate_dialogues)
    batches = list(loader)
    assert sum(b.batch_size for b in batches) == len(corpus.dialogues)
    assert all(b.labels.dtype == torch.float32 for b in batches)
    assert sum(int(b.utterance_mask.sum()) for b in batches) == sum(len(d) for d in corpus.dialogues.values())


# --- the synthetic generator -------------------------------------------------------------------------------------


def _condition_accuracy(corpus, letters: str) -> float:
    """Fold-1 test accuracy of a nearest-class-mean probe that sees only the modalities in `letters`."""
    split = corpus.splits()[0]

    def matrix(names):
        rows = [
            np.concatenate([d.features[m] * (m.letter in letters) for m in MODALITIES], axis=1)
            for d in (corpus.dialogues[n] for n in names)
        ]
        return np.concatenate(rows), np.concatenate([corpus.dialogues[n].labels for n in names])

    x_train, y_train = matrix(split.train + split.val)
    x_test, y_test = matrix(split.test)
    means = np.stack([x_train[y_train == c].mean(axis=0) for c in range(len(corpus.spec.label_names))])
    predicted = ((x_test[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
    return float((predicted == y_test).mean())


def test_synthetic_modalities_carry_different_partial_information(tmp_path: Path) -> None:
    corpus = load_corpus("iemocap4", write_synthetic(tmp_path, "iemocap4", dialogues=60, seed=0))
    accuracy = {letters: _condition_accuracy(corpus, letters) for letters in ("a", "t", "v", "av", "atv")}
    # a and v each know one binary factor of the 4 classes (about 50 %); together they know the class.
    assert accuracy["a"] < 0.62 and accuracy["v"] < 0.62
    assert accuracy["av"] > 0.9
    assert accuracy["a"] + 0.05 < accuracy["t"] < accuracy["av"]
    assert accuracy["atv"] >= accuracy["av"] - 0.01


def test_synthetic_cli_prints_counts_and_replaces_its_own_output(tmp_path: Path, capsys) -> None:
    synthetic_main(["--out", str(tmp_path), "--dataset", "mosi", "--dialogues", "5"])
    arguments = ["--out", str(tmp_path), "--dataset", "iemocap6", "--dialogues", "10", "--dims", "5", "6", "7"]
    synthetic_main(arguments)
    synthetic_main(arguments)  # a rerun replaces its own output instead of failing or mixing files
    printed = capsys.readouterr().out
    assert f"wrote synthetic iemocap6 to {tmp_path}" in printed
    assert "10 dialogues" in printed and "dims a=5 t=6 v=7" in printed
    assert not (tmp_path / "CMUMOSI_features_raw_2way.pkl").exists()
    corpus = load_corpus("iemocap6", tmp_path)
    assert max(int(d.labels.max()) for d in corpus.dialogues.values()) == 5


def test_synthetic_refuses_to_overwrite_foreign_data(tmp_path: Path) -> None:
    (tmp_path / "features" / "wav2vec-large-c-UTT").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not written by this generator"):
        write_synthetic(tmp_path)
