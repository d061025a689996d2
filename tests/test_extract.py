"""The extraction CLI on a handful of real files, round-tripped into the trainer and the Predictor."""

import csv
import json

import pandas as pd
import pytest

from mculora.data.extract import main as extract
from mculora.serving.predictor import Predictor
from mculora.training.train import main as train

TEXTS = {
    "angry": ["This is outrageous, I am furious with you!", "Stop lying to me, I'm so mad right now."],
    "happy": ["I'm so happy for you, this is wonderful news!", "What a lovely day, I feel great."],
    "sad": ["I miss her so much, everything feels empty.", "I failed again and I feel awful."],
    "neutral": ["The meeting is at three o'clock.", "Please put the box on the table."],
}


@pytest.fixture(scope="module")
def manifest(shared_data, tmp_path_factory):
    """16 utterances pairing a RAVDESS clip, a FER face and a sentence of the same emotion, in dialogues per label
    and split, plus one row with a broken audio file, a blank image and an empty text."""
    folder = tmp_path_factory.mktemp("manifest")
    speech = pd.read_csv(shared_data / "ravdess_speech" / "labels.csv")
    faces = pd.read_csv(shared_data / "fer2013" / "labels.csv")
    rows = []
    for label in TEXTS:  # the four labels are spelled the same in RAVDESS and FER-2013
        clips = speech[(speech.emotion == label) & (speech.intensity == 1)].path.head(4).tolist()
        images = faces[(faces.label == label) & (faces.split == "train")].path.head(4).tolist()
        for i, split in enumerate(["train", "train", "val", "test"]):
            rows.append(
                {
                    "id": f"{label}-{i}",
                    "label": label,
                    "text": TEXTS[label][i % 2],
                    "audio": str(shared_data / "ravdess_speech" / clips[i]),
                    "image": str(shared_data / "fer2013" / images[i]),
                    "dialogue": f"d-{label}-{split}",
                    "split": split,
                }
            )
    broken = folder / "broken.wav"
    broken.write_bytes(b"this is not audio")
    blank = folder / "blank.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(blank)
    rows.append(
        {
            "id": "broken-0",
            "label": "sad",
            "text": "",
            "audio": "broken.wav",
            "image": "blank.png",
            "dialogue": "d-broken",
            "split": "train",
        }
    )
    path = folder / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.slow
def test_extract_train_predict_round_trip(manifest, tmp_path, capsys):
    out = tmp_path / "features"
    extract(["--manifest", str(manifest), "--out", str(out), "--name", "tiny", "--batch-size", "5"])
    printed = capsys.readouterr()
    # The data set carries the face network its vision features came from, and so will its checkpoints.
    assert (out / "face_net.safetensors").is_file()
    assert "could not read audio file" in printed.err and "no face found" in printed.err
    spec = json.loads((out / "dataset.json").read_text())
    assert spec["name"] == "tiny" and spec["label_names"] == ["angry", "happy", "neutral", "sad"]
    assert spec["encoders"]["profile"] == "offline"
    counts = {m: len(list((out / "features" / folder).glob("*.npy"))) for m, folder in spec["feature_folders"].items()}
    # The broken row has no usable feature; the face finder may miss the odd 48x48 FER face.
    assert counts["audio"] == counts["text"] == 16 and 14 <= counts["vision"] <= 16, counts
    assert "wrote" in printed.out and "'dropped': 1" in printed.out

    # Resumable: a second run finds everything done and rewrites nothing.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    progress_lines = len((out / "progress.jsonl").read_text().splitlines())
    extract(["--manifest", str(manifest), "--out", str(out), "--name", "tiny"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == stamps
    assert len((out / "progress.jsonl").read_text().splitlines()) == progress_lines

    run = tmp_path / "run"
    train(
        [
            "--dataset",
            "tiny",
            "--data-root",
            str(out),
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--standardize",
            "true",
            "--model-hidden",
            "32",
            "--model-depth",
            "1",
            "--out",
            str(run),
        ]
    )
    results = json.loads((run / "results.json").read_text())
    assert results["dataset"] == "tiny" and set(results["conditions"]) == {"a", "t", "v", "at", "av", "tv", "atv"}

    assert (run / "checkpoints" / "seed66-given" / "face_net.safetensors").is_file()
    predictor = Predictor.from_pretrained(run / "checkpoints" / "seed66-given", device="cpu")
    assert predictor.labels == ["angry", "happy", "neutral", "sad"]
    rows = list(csv.DictReader(manifest.open()))
    p = predictor.predict(text=rows[0]["text"], audio=rows[0]["audio"], image=rows[0]["image"])
    assert p.used == ["audio", "text", "vision"] and p.label in predictor.labels


def test_bad_manifests_fail_clearly(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,emotion\nx,happy\n")
    with pytest.raises(SystemExit, match="'id' and 'label'"):
        extract(["--manifest", str(bad), "--out", str(tmp_path / "out")])
    bad.write_text("id,label\na/b,happy\n")
    with pytest.raises(SystemExit, match="must be letters"):
        extract(["--manifest", str(bad), "--out", str(tmp_path / "out")])
    bad.write_text("id,label\na,happy\na,sad\n")
    with pytest.raises(SystemExit, match="duplicate id"):
        extract(["--manifest", str(bad), "--out", str(tmp_path / "out")])
