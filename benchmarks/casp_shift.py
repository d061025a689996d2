"""CASP test-time adaptation under a real shift: speakers of the other gender, on genuinely paired speech + faces.

    python benchmarks/casp_shift.py [--data-root ../shared/data] [--seeds 1 2 3] [--json out.json]

Data: RAVDESS clips with their facial action units (``ravdess_au``, 1,320 clips of actors 01-22) and the hand-built
acoustic descriptor of the same performance's speech (`mculora.encoders.acoustic_descriptor`, no trained weights, so
nothing has seen the target speakers). RAVDESS's odd-numbered actors are male, the even-numbered female.

For each direction (male -> female, female -> male) and seed: an MCULoRA model (hidden 64, depth 2, as the default
recipe's RAVDESS AU benchmark) is trained on the source actors (one source actor held out for selection), then
evaluated on every clip of the target actors with speech and faces, before and after `mculora.training.adapt.adapt` on
those same clips without their labels. Prints a markdown table (accuracy and weighted F1, mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mculora.encoders.acoustic_descriptor import AcousticDescriptor  # noqa: E402
from mculora.modalities import Modality  # noqa: E402
from mculora.model import MCULoRAConfig  # noqa: E402
from mculora.preprocess.audio import prepare_audio  # noqa: E402
from mculora.recipes.pairing import chunked, shuffled  # noqa: E402
from mculora.recipes.sources import EKMAN, RAVDESS_TO_EKMAN  # noqa: E402
from mculora.training.adapt import AdaptSettings, adapt, evaluate  # noqa: E402
from mculora.training.config import TrainConfig  # noqa: E402
from mculora.training.methods import build_method  # noqa: E402
from mculora.training.metrics import mean_and_std  # noqa: E402
from mculora.training.train import Workers, feature_statistics, fit, seed_everything  # noqa: E402

AU_DIM = 35
CACHE = ROOT / "runs" / "casp_shift"


def load(data_root: Path) -> dict:
    data = np.load(data_root / "ravdess_au" / "ravdess_au_audio.npz", allow_pickle=False)
    cache = CACHE / "descriptors.npy"
    if cache.is_file():
        speech = np.load(cache)
    else:
        encoder = AcousticDescriptor()
        folder = data_root / "ravdess_speech" / "audio"
        speech = np.stack(
            [
                encoder.encode([prepare_audio(folder / name).samples])[0].numpy()
                for name in tqdm(data["audio_file"], desc="acoustic descriptors", leave=False)
            ]
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, speech)
    return {
        "audio": speech.astype(np.float32),
        "units": data["features"][:, :AU_DIM].astype(np.float32),
        "labels": np.array([EKMAN.index(RAVDESS_TO_EKMAN.get(e, e)) for e in data["emotion"]]),
        "actors": data["actor"],
    }


def batches(data: dict, rows: np.ndarray, size: int = 64):
    vectors = {
        Modality.AUDIO: data["audio"][rows],
        Modality.TEXT: np.zeros((len(rows), 1), np.float32),
        Modality.VISION: data["units"][rows],
    }
    available = np.tile([True, False, True], (len(rows), 1))
    return chunked(vectors, data["labels"][rows], available, size)


def run(data: dict, source_parity: int, seed: int) -> tuple[dict, dict]:
    source = np.flatnonzero(data["actors"] % 2 == source_parity)
    target = np.flatnonzero(data["actors"] % 2 != source_parity)
    held_out = data["actors"][source].max()  # the highest-numbered source actor selects the epoch
    train, val = source[data["actors"][source] != held_out], source[data["actors"][source] == held_out]
    config = TrainConfig(method="mcu-lora", lr=1e-3, epochs=60, model=MCULoRAConfig(hidden=64, depth=2), seeds=[seed])
    config.dpft.mode = "off"  # the separability probe needs text, which RAVDESS lacks
    seed_everything(seed)
    method = build_method("mcu-lora", config)
    model = method.build_model({"audio": data["audio"].shape[1], "text": 1, "vision": AU_DIM}, len(EKMAN))
    model.set_input_statistics(
        {
            Modality.AUDIO: feature_statistics(data["audio"][train]),
            Modality.VISION: feature_statistics(data["units"][train]),
        }
    )
    device = torch.device("cpu")
    allowed = torch.tensor([True, False, True])
    train_batches = batches(data, train)
    fit(
        config,
        method,
        model,
        shuffled(train_batches, np.random.default_rng(seed)),
        batches(data, val),
        "classification",
        device,
        Workers(),
        seed,
        conditions=("a", "v", "av"),
        allowed=allowed,
        description=f"source model, seed {seed}",
    )
    target_batches = batches(data, target, size=24)  # CASP's batch size
    before = evaluate(model, target_batches, "classification")
    adapted, _ = adapt(model, target_batches, "classification", AdaptSettings(seed=seed))
    return before, evaluate(adapted, target_batches, "classification")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    data = load(args.data_root)
    results = {}
    rows = [
        "| shift | target clips | accuracy before | accuracy after | weighted F1 before | weighted F1 after |",
        "|---" * 6 + "|",
    ]
    for parity, name in ((1, "male -> female"), (0, "female -> male")):
        runs = [run(data, parity, seed) for seed in args.seeds]
        keep = ("accuracy", "f1")
        before = mean_and_std([{k: r[0][k] for k in keep} for r in runs])
        after = mean_and_std([{k: r[1][k] for k in keep} for r in runs])
        results[name] = {"before": before, "after": after, "seeds": args.seeds}
        clips = int((data["actors"] % 2 != parity).sum())
        cells = [f"{d[k]:.3f} ± {d[k + '_std']:.3f}" for k in keep for d in (before, after)]
        rows.append(f"| {name} | {clips} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
