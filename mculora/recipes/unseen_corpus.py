"""The fused model on speech from a corpus it never heard: leave-one-corpus-out pairs.

The served speech network learned from both acted corpora, so none of their test clips is from a corpus it never
heard. The leave-one-corpus-out networks of `mculora.recipes.speech_transfer` each learned one corpus only. Their
outputs on the other corpus's test speakers, stitched onto the served network's coordinates (`Stitch`, fitted on
the training clips of the corpus both learned from), stand in for what the served network gives on a new corpus.
Joined with test texts and faces of the same label (the six classes both corpora have), they make label-paired
samples on which the served fusion and its temperatures are measured per combination: accuracy, calibration (ECE
after the temperatures), the collapse check, and which member a pair follows when its members disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mculora.encoders.speech_net import SpeechEmotionEncoder
from mculora.modalities import Modality
from mculora.preprocess.audio import prepare_audio
from mculora.recipes.cross_fitting import Stitch
from mculora.recipes.pairing import Pool, fixed_pairs
from mculora.recipes.sources import EKMAN, Item
from mculora.recipes.speech_transfer import DIRECTIONS, SHARED, network_file
from mculora.training.calibration import expected_calibration_error, softmax
from mculora.training.evaluate import CONDITIONS, disagreement_report, predict_conditions
from mculora.training.metrics import collapse_check


def unseen_corpus_report(
    model: torch.nn.Module,
    temperatures: dict[str, float],
    pools: dict,
    items: list[Item],
    served_audio: Path,
    transfer: Path,
    variants: int,
    per_label: int,
    seed: int,
    device: torch.device,
) -> dict:
    """Per direction (source -> target corpus): the stitch's correlations and, per combination, accuracy, ECE and
    the collapse check on leave-one-corpus-out pairs, and `disagreement_report`. ``served_audio``: the folder of the
    served audio encoder's vectors (which holds the training clips'); ``transfer``: `speech_transfer`'s output
    folder, run with ``variants`` augmented copies."""
    classes = [EKMAN.index(name) for name in SHARED]
    report = {}
    for source, target in DIRECTIONS:
        encoder = SpeechEmotionEncoder(network_file(transfer, source, target, variants))
        common = [
            item
            for item in items
            if item.modality is Modality.AUDIO
            and (item.source, item.split) == (source, "train")
            and (served_audio / f"{item.id}.npy").is_file()
        ]
        stitch = Stitch.fit(
            _encode(encoder, common), np.stack([np.load(served_audio / f"{item.id}.npy") for item in common]), seed=seed
        )
        heard = [
            item
            for item in items
            if item.modality is Modality.AUDIO
            and (item.source, item.split) == (target, "test")
            and item.label in SHARED
        ]
        audio = Pool(
            stitch(_encode(encoder, heard)),
            np.array([EKMAN.index(item.label) for item in heard]),
            np.array([item.source for item in heard]),
            [item.id for item in heard],
        )
        paired = {**{key: pool for key, pool in pools.items() if key[1] == "test"}, (Modality.AUDIO, "test"): audio}
        batches = [b.to(device) for b in fixed_pairs(paired, "test", per_label, seed, classes=classes)]
        predictions = predict_conditions(model, batches, CONDITIONS, device)
        report[f"{source}->{target}"] = {
            "clips": len(heard),
            "stitch": {"items": len(common), **stitch.correlation},
            "conditions": {
                condition: {
                    "accuracy": float((logits.argmax(1) == labels).mean()),
                    "ece": expected_calibration_error(softmax(logits, temperatures[condition]), labels),
                    **collapse_check(labels, logits, EKMAN),
                }
                for condition, (labels, logits) in predictions.items()
            },
            "disagreement": disagreement_report(predictions),
        }
    return report


def _encode(encoder: SpeechEmotionEncoder, clips: list[Item]) -> np.ndarray:
    return encoder.encode([prepare_audio(item.path).samples for item in clips]).numpy()
