"""Leave-one-corpus-out evaluation of the speech network: trained on one acted corpus, tested on the other.

    python -m mculora.recipes.speech_transfer --data-root ../shared/data [--epochs 30] [--augment-variants 0 3]

A browser user is another speaker, language and microphone than any training clip. The closest measurable stand-in
here is the other corpus: RAVDESS (English, 24 actors, studio) -> EmoDB (German, 10 speakers) and the reverse, on the
six classes both have (anger, disgust, fear, happiness, neutral, sadness; RAVDESS's calm counts as neutral). The
source corpus's train and test speakers train the network and its validation speakers validate it, as in
`mculora.recipes.speech`; every clip of the target corpus is tested, whole, as the encoder sees it, restricted to the
six classes. For each direction and each ``--augment-variants`` setting (0: today's recipe; N: N copies of each
training clip under `speech_augment.BrowserConditions`):

* accuracy, macro-F1 and ECE on the target corpus, clean and after an Opus 16 kbit/s round trip (a WebRTC
  microphone);
* the predicted-class distribution on a class-balanced draw of the target corpus, and the collapse check: no class
  may take more than `mculora.training.metrics.COLLAPSE_SHARE` of the predictions.

Writes ``OUT/report.json`` and each direction's network (`network_file`), and prints a table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mculora.encoders.speech_net import WEIGHTS_FILE, LogMel, fit_length, save_speech_net
from mculora.preprocess.audio import prepare_audio
from mculora.recipes.sources import EKMAN, Item, emodb_items, ravdess_items
from mculora.recipes.speech import SpeechTrainConfig, train_speech_net
from mculora.recipes.speech_augment import codec_round_trip
from mculora.training.calibration import expected_calibration_error, fit_temperature, softmax
from mculora.training.metrics import classification_report, collapse_check

SHARED = ("anger", "disgust", "fear", "happiness", "neutral", "sadness")
DIRECTIONS = (("ravdess", "emodb"), ("emodb", "ravdess"))


def transfer_items(speech: list[Item], source: str, target: str) -> list[Item]:
    """The six shared classes of both corpora (``speech``: their items): the source's speakers train (its validation
    speakers validate), every target clip is a test clip."""
    items = []
    for item in speech:
        if item.label in SHARED and item.source in (source, target):
            split = ("val" if item.split == "val" else "train") if item.source == source else "test"
            items.append(replace(item, split=split))
    return items


@torch.inference_mode()
def shared_logits(net, clips: list[np.ndarray]) -> np.ndarray:
    """The network's logits of the six shared classes, each clip whole, as the encoder sees it."""
    log_mel, shared = LogMel(), [EKMAN.index(name) for name in SHARED]
    return np.stack([net(fit_length(log_mel(clip))[None])[0, shared].numpy() for clip in clips])


def evaluate(net, clips: list[np.ndarray], labels: np.ndarray, temperature: float) -> dict:
    """Accuracy, macro-F1, ECE (raw, and with the ``temperature`` fitted on the source's validation speakers: does
    calibration carry over to a corpus never heard?) and the balanced prediction distribution."""
    logits = shared_logits(net, clips)
    report = classification_report(labels, logits, SHARED)
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "ece": expected_calibration_error(softmax(logits), labels),
        "ece_scaled": expected_calibration_error(softmax(logits, temperature), labels),
        **collapse_check(labels, logits, SHARED),
    }


def network_file(out: Path, source: str, target: str, variants: int) -> Path:
    """Where `run` keeps the network of one direction and setting."""
    return out / f"{source}_to_{target}_aug{variants}" / WEIGHTS_FILE


def run(
    speech: list[Item],
    epochs: int,
    variants: list[int],
    out: Path,
    seed: int = 0,
    directions=DIRECTIONS,
    band_normalised: bool = False,
) -> dict:
    """Each direction under each setting, on the RAVDESS and EmoDB items ``speech``; read back from
    ``out``/report.json when it was made with these settings. ``band_normalised``: the network's input option."""
    settings = {
        "clips": len(speech),
        "band_normalised": band_normalised,
        "epochs": epochs,
        "variants": list(variants),
        "seed": seed,
        "directions": [list(d) for d in directions],
    }
    stored = out / "report.json"
    networks = [network_file(out, source, target, count) for source, target in directions for count in variants]
    made = stored.is_file() and json.loads(stored.read_text()).get("settings") == settings
    if made and all(file.is_file() for file in networks):
        return json.loads(stored.read_text())["results"]
    results = {}
    for source, target in directions:
        items = transfer_items(speech, source, target)
        tests = [item for item in items if item.split == "test"]
        clean = [prepare_audio(item.path).samples for item in tests]
        browser = [
            prepare_audio(codec_round_trip(clip, "libopus", "ogg", 16_000), sample_rate=16_000).samples
            for clip in clean
        ]
        labels = np.array([SHARED.index(item.label) for item in tests])
        sources = [item for item in items if item.split == "val"]
        validation = [prepare_audio(item.path).samples for item in sources]
        validation_labels = np.array([SHARED.index(item.label) for item in sources])
        for count in variants:
            config = SpeechTrainConfig(
                out=network_file(out, source, target, count).parent,
                epochs=epochs,
                seed=seed,
                augment_variants=count,
                band_normalised=band_normalised,
            )
            net, report = train_speech_net(config, items, log=lambda line: None)
            config.out.mkdir(parents=True, exist_ok=True)
            save_speech_net(net, network_file(out, source, target, count))
            temperature = fit_temperature(shared_logits(net, validation), validation_labels)
            results[f"{source}->{target}, {count} augmented copies"] = {
                "train_clips": report["train_clips"],
                "source_val_accuracy": report["history"][-1].get("val_accuracy"),
                "temperature": temperature,
                "clean": evaluate(net, clean, labels, temperature),
                "opus_16k": evaluate(net, browser, labels, temperature),
            }
            print(table_row(next(reversed(results)), results[next(reversed(results))]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    return results


def table_row(name: str, result: dict) -> str:
    cells = []
    for condition in ("clean", "opus_16k"):
        r = result[condition]
        cells.append(
            f"{r['accuracy']:.3f} / {r['macro_f1']:.3f} / ECE {r['ece']:.3f} ({r['ece_scaled']:.3f} scaled) / "
            f"top {r['largest']} {r['largest_share']:.0%}" + (" COLLAPSED" if r["collapsed"] else "")
        )
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--augment-variants", type=int, nargs="+", default=[0, 3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--band-normalised", action="store_true", help="remove each mel band's mean (the network)")
    parser.add_argument("--out", type=Path, default=Path("runs/speech_transfer"))
    parser.add_argument(
        "--directions", nargs="+", default=[f"{s}:{t}" for s, t in DIRECTIONS], help="source:target pairs"
    )
    args = parser.parse_args(argv)
    directions = [tuple(pair.split(":")) for pair in args.directions]
    print("| direction, training | clean: accuracy / macro-F1 / ECE / largest share | Opus 16 kbit/s: the same |")
    print("|---|---|---|")
    speech = ravdess_items(args.data_root) + emodb_items(args.data_root)
    run(speech, args.epochs, args.augment_variants, args.out, args.seed, directions, args.band_normalised)


if __name__ == "__main__":
    main()
