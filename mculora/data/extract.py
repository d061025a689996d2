"""Extract features from raw media into the on-disk layout the trainer reads.

    python -m mculora.data.extract --manifest data.csv --out features/mydata [--name mydata] [--profile offline]
    python -m mculora.training.train --dataset mydata --data-root features/mydata --standardize true

The manifest is a CSV with a header. Columns:
    id        unique utterance id (letters, digits, '-', '_', '.')          required
    label     emotion name                                                  required
    text      the utterance's text                                          optional
    audio     path of a wav/flac/ogg file                                   optional
    image     path of a face image, or of a short video (mp4, webm, ...)    optional
    dialogue  dialogue id: utterances of one dialogue form one sequence     optional (default: each its own)
    speaker   speaker id within the dialogue                                optional
    split     train / val / test, the same for a whole dialogue             optional (default: seeded 80/10/10)
Relative paths are relative to the manifest's folder.

Output: ``OUT/features/<encoder name>/<id>.npy`` per usable modality, ``OUT/<name>_labels.pkl`` (the GCNet label
pickle: ids, labels, speakers, texts and the train/val/test split), and ``OUT/dataset.json`` naming the label set
and the encoders. The run is resumable: ids already listed in ``OUT/progress.jsonl`` are skipped. A file that
cannot be used is reported and that modality left out; it never stops the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mculora.data.gcnet import SPEC_FILE
from mculora.device import select_device
from mculora.encoders import (
    DEFAULT_PROFILE,
    PROFILES,
    EncoderUnavailable,
    build_encoders,
    copy_encoder_weights,
    describe_encoders,
)
from mculora.encoders.featurize import Featurizer
from mculora.modalities import MODALITIES, Modality
from mculora.preprocess import UnusableInput

VIDEO_SUFFIXES = {".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v"}
SPLITS = ("train", "val", "test")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # ids become file names
PROGRESS_FILE = "progress.jsonl"
TIMING_FILE = "timing.json"


@dataclass
class ManifestRow:
    id: str
    label: str
    text: str | None
    audio: Path | None
    image: Path | None
    dialogue: str
    speaker: str
    split: str | None


def read_manifest(path: Path) -> list[ManifestRow]:
    """Parse and check the manifest; every problem is reported with its line number."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"id", "label"} <= columns:
            raise ValueError(f"{path}: the header needs at least 'id' and 'label' columns, got {sorted(columns)}")
        rows, seen = [], set()
        for line, record in enumerate(reader, start=2):
            cells = {key: (value or "").strip() for key, value in record.items() if key}

            def file(name: str, cells: dict = cells) -> Path | None:
                return (path.parent / cells[name]) if cells.get(name) else None

            utterance, label, split = cells["id"], cells["label"], cells.get("split", "").lower() or None
            if not SAFE_ID.match(utterance):
                raise ValueError(f"{path}:{line}: id {utterance!r} must be letters, digits, '.', '-' or '_'")
            if utterance in seen:
                raise ValueError(f"{path}:{line}: duplicate id {utterance!r}")
            if not label:
                raise ValueError(f"{path}:{line}: id {utterance!r} has no label")
            if split is not None and split not in SPLITS:
                raise ValueError(f"{path}:{line}: split must be one of {SPLITS}, got {split!r}")
            seen.add(utterance)
            text = record.get("text")
            rows.append(
                ManifestRow(
                    utterance,
                    label,
                    text if text and text.strip() else None,
                    file("audio"),
                    file("image"),
                    cells.get("dialogue") or utterance,
                    cells.get("speaker", ""),
                    split,
                )
            )
    if not rows:
        raise ValueError(f"{path}: the manifest has no rows")
    return rows


def assign_splits(rows: Sequence[ManifestRow], seed: int = 0) -> dict[str, str]:
    """Split per dialogue: the manifest's own column, or a seeded 80/10/10 draw when it has none."""
    splits: dict[str, str] = {}
    for row in rows:
        if row.split is None:
            continue
        if splits.setdefault(row.dialogue, row.split) != row.split:
            raise ValueError(f"dialogue {row.dialogue!r} is in more than one split")
    unassigned = sorted({row.dialogue for row in rows} - set(splits))
    order = np.random.default_rng(seed).permutation(len(unassigned))
    for rank, i in enumerate(order):
        fraction = rank / max(len(unassigned), 1)
        splits[unassigned[i]] = "test" if fraction < 0.1 else "val" if fraction < 0.2 else "train"
    return splits


class Extractor:
    def __init__(self, out: Path, profile: str, device: torch.device, weights: Path | None = None):
        """``weights``: where trained encoders read their weights (a checkpoint directory); they are copied into
        ``out``, so that the data set names the exact encoders its features came from."""
        self.out, self.profile = out, profile
        self.encoders = build_encoders(profile, device, weights=weights)
        out.mkdir(parents=True, exist_ok=True)
        copy_encoder_weights(weights, out)
        self.featurizer = Featurizer(self.encoders)
        self.folders = {m: out / "features" / self.encoders[m].name for m in MODALITIES}
        for folder in self.folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.progress_path = out / PROGRESS_FILE

    def done(self) -> dict[str, dict[str, str]]:
        """Ids already extracted -> the reasons their missing modalities were left out. An id counts only while
        the current encoders' feature files for it exist: after an encoder changes (a new folder), it is redone."""
        if not self.progress_path.is_file():
            return {}
        done = {}
        for line in self.progress_path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                done[entry["id"]] = entry["missing"]
        return {
            item: missing
            for item, missing in done.items()
            if all((self.folders[m] / f"{item}.npy").is_file() for m in MODALITIES if m.value not in missing)
        }

    def extract(self, rows: Sequence[ManifestRow], batch_size: int = 64) -> dict[str, dict[str, str]]:
        """Extract the rows not done yet; return id -> {modality: reason it was left out} for every row done."""
        started = time.perf_counter()
        results = self.done()
        todo = [row for row in rows if row.id not in results]
        with self.progress_path.open("a") as progress, tqdm(total=len(todo), desc="extracting", unit="utt") as bar:
            for offset in range(0, len(todo), batch_size):
                chunk = todo[offset : offset + batch_size]
                for row, missing in zip(chunk, self._extract_chunk(chunk), strict=True):
                    results[row.id] = missing
                    progress.write(json.dumps({"id": row.id, "missing": missing}) + "\n")
                progress.flush()
                bar.update(len(chunk))
        self._add_time(time.perf_counter() - started, len(todo))
        return results

    def _add_time(self, seconds: float, items: int) -> None:
        """Accumulate the wall time spent extracting in OUT/timing.json, over resumed runs too."""
        path = self.out / TIMING_FILE
        total = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "items": 0}
        total = {"seconds": total["seconds"] + seconds, "items": total["items"] + items}
        path.write_text(json.dumps(total) + "\n")

    def seconds_spent(self) -> float:
        path = self.out / TIMING_FILE
        return json.loads(path.read_text())["seconds"] if path.is_file() else 0.0

    def _extract_chunk(self, chunk: Sequence[ManifestRow]) -> list[dict[str, str]]:
        timings: dict[str, float] = {}
        texts = self.featurizer.texts([row.text for row in chunk if row.text is not None], timings)
        text_of = dict(zip([row.id for row in chunk if row.text is not None], texts, strict=True))
        missing_per_row = []
        for row in chunk:
            missing: dict[str, str] = {}
            vectors: dict[Modality, torch.Tensor] = {}
            for modality in MODALITIES:
                try:
                    vector = self._encode(row, modality, text_of, timings)
                except UnusableInput as reason:
                    missing[modality.value] = str(reason)
                    continue
                except Exception as error:  # a broken file must not stop a long extraction run
                    missing[modality.value] = f"failed: {type(error).__name__}: {error}"
                    continue
                if vector is None:
                    missing[modality.value] = "not given"
                else:
                    vectors[modality] = vector
            for modality, vector in vectors.items():
                np.save(self.folders[modality] / f"{row.id}.npy", vector.numpy().astype(np.float32))
            missing_per_row.append(missing)
        return missing_per_row

    def _encode(self, row: ManifestRow, modality: Modality, text_of: dict, timings: dict) -> torch.Tensor | None:
        if modality is Modality.TEXT:
            if row.text is None:
                return None
            vector = text_of[row.id]
            if isinstance(vector, UnusableInput):
                raise vector
            return vector
        if modality is Modality.AUDIO:
            return None if row.audio is None else self.featurizer.audio(str(row.audio), timings, [])
        if row.image is None:
            return None
        if row.image.suffix.lower() in VIDEO_SUFFIXES:
            return self.featurizer.vision(None, str(row.image), timings)[0]
        return self.featurizer.vision(str(row.image), None, timings)[0]

    def write_dataset(
        self,
        name: str,
        rows: Sequence[ManifestRow],
        results: dict[str, dict[str, str]],
        labels: Sequence[str],
        seed: int = 0,
    ) -> dict:
        """Label pickle + dataset.json over the rows with at least one usable modality (``results``: `extract`'s)."""
        kept = [row for row in rows if row.id in results and len(results[row.id]) < len(MODALITIES)]
        if not kept:
            raise ValueError("no utterance has any usable modality; nothing to write")
        splits = assign_splits(kept, seed)
        index = {label: i for i, label in enumerate(labels)}
        ids: dict[str, list[str]] = {}
        for row in kept:
            ids.setdefault(row.dialogue, []).append(row.id)
        by_id = {row.id: row for row in kept}
        per_dialogue = {
            "labels": {d: [index[by_id[u].label] for u in us] for d, us in ids.items()},
            "speakers": {d: [by_id[u].speaker for u in us] for d, us in ids.items()},
            "texts": {d: [by_id[u].text or "" for u in us] for d, us in ids.items()},
        }
        split_lists = [[d for d in ids if splits[d] == split] for split in SPLITS]
        write_label_set(self.out, name, ids, per_dialogue, split_lists, labels, self.profile, self.encoders)
        return {
            "utterances": len(kept),
            "dropped": len(rows) - len(kept),
            **{split: len(names) for split, names in zip(SPLITS, split_lists, strict=True)},
        }


def write_label_set(
    out: Path,
    name: str,
    ids: dict[str, list[str]],
    per_dialogue: dict[str, dict[str, list]],
    split_lists: Sequence[list[str]],
    labels: Sequence[str],
    profile: str,
    encoders: dict,
) -> None:
    """The GCNet label pickle and dataset.json of a data set whose features lie in OUT/features/<encoder name>/:
    ``ids`` dialogue -> utterance ids; ``per_dialogue`` "labels" (indices), "speakers" and "texts" per dialogue;
    ``split_lists`` the train, val and test dialogues."""
    label_file = f"{name}_labels.pkl"
    with (out / label_file).open("wb") as handle:
        content = [ids, per_dialogue["labels"], per_dialogue["speakers"], per_dialogue["texts"], *split_lists]
        pickle.dump(content, handle)
    spec = {
        "name": name,
        "label_file": label_file,
        "task": "classification",
        "label_names": list(labels),
        "folds": "given",
        "encoder_profile": profile,
        "feature_folders": {m.value: encoders[m].name for m in MODALITIES},
        "feature_dims": {m.value: encoders[m].dim for m in MODALITIES},
        "encoders": describe_encoders(profile, encoders),
    }
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--name", help="data set name for --dataset when training (default: the output folder's name)")
    parser.add_argument("--labels", help="comma-separated label order (default: sorted labels of the manifest)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--batch-size", type=int, default=64, help="texts encoded together")
    parser.add_argument("--seed", type=int, default=0, help="for the 80/10/10 split when the manifest has none")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--encoder-weights",
        type=Path,
        default=Path("checkpoints/default"),
        help="a checkpoint directory whose trained encoder networks (face, text, speech) to use",
    )
    args = parser.parse_args(argv)

    try:
        rows = read_manifest(args.manifest)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else sorted({r.label for r in rows})
    unknown = sorted({r.label for r in rows} - set(labels))
    if unknown:
        raise SystemExit(f"error: labels {unknown} of the manifest are not in --labels")
    try:
        extractor = Extractor(args.out, args.profile, select_device(args.device), args.encoder_weights)
    except EncoderUnavailable as error:
        raise SystemExit(f"error: {error}") from None
    results = extractor.extract(rows, args.batch_size)
    problems = Counter(
        f"{modality}: {reason}"
        for missing in results.values()
        for modality, reason in missing.items()
        if reason != "not given"
    )
    for problem, count in problems.most_common():
        print(f"  {count:6d} × {problem}", file=sys.stderr)
    summary = extractor.write_dataset(args.name or args.out.name, rows, results, labels, args.seed)
    print(f"wrote {args.out}: {summary}")


if __name__ == "__main__":
    main()
