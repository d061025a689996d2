"""The fused model on speech from a corpus it never heard: leave-one-corpus-out pairs.

The served speech network learned from both acted corpora, so none of their test clips is from a corpus it never
heard. The leave-one-corpus-out networks of `mculora.recipes.speech_transfer` each learned one corpus only. Their
outputs on the other corpus's test speakers, stitched onto the served network's coordinates (`Stitch`, fitted on
the training clips of the corpus both learned from), stand in for what the served network gives on a new corpus.
Joined with test texts and faces of the same label (the six classes both corpora have), they make label-paired
samples on which the served fusion and its temperatures are measured per combination: accuracy, calibration (ECE
after the temperatures), the collapse check, and which member a pair follows when its members disagree; and again
with each voice moved by a session of its speaker's other clips (`mculora.recipes.speaker_sessions`), as a person
who lets the page grow their profile is served. The same voices of the validation speakers join the pairs the
temperatures are fitted on (`mculora.recipes.default`), so calibration is fitted on a corpus never heard as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mculora.data import Batch
from mculora.encoders.speech_net import SpeechEmotionEncoder
from mculora.modalities import Modality
from mculora.preprocess.audio import prepare_audio
from mculora.recipes.cross_fitting import Stitch
from mculora.recipes.pairing import Pool, fixed_pairs
from mculora.recipes.sources import EKMAN, Item
from mculora.recipes.speaker_sessions import SpeakerSessions
from mculora.recipes.speech_transfer import DIRECTIONS, SHARED, network_file
from mculora.training.calibration import expected_calibration_error, softmax
from mculora.training.evaluate import CONDITIONS, disagreement_report, predict_conditions
from mculora.training.metrics import collapse_check


def unseen_corpus_voices(
    items: list[Item], served_audio: Path, transfer: Path, variants: int, split: str, seed: int
) -> dict[str, tuple[Pool, dict]]:
    """Per direction ("source->target"): the target corpus's ``split`` clips of the shared classes through the
    network that learned the source corpus only, stitched onto the served network's coordinates, and the stitch's
    report. ``served_audio``: the folder of the served audio encoder's vectors (which holds the training clips');
    ``transfer``: `speech_transfer`'s output folder, run with ``variants`` augmented copies."""
    voices = {}
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
            if item.modality is Modality.AUDIO and (item.source, item.split) == (target, split) and item.label in SHARED
        ]
        pool = Pool(
            stitch(_encode(encoder, heard)),
            np.array([EKMAN.index(item.label) for item in heard]),
            np.array([item.source for item in heard]),
            [item.id for item in heard],
        )
        voices[f"{source}->{target}"] = pool, {"items": len(common), **stitch.correlation}
    return voices


def unseen_corpus_pairs(
    pools: dict, voices: Pool, split: str, per_label: int, seed: int, batch_size: int = 256
) -> list[Batch]:
    """Fixed label-paired samples of ``split`` (the six shared classes) with ``voices`` for the audio pool."""
    paired = {**pools, (Modality.AUDIO, split): voices}
    classes = [EKMAN.index(name) for name in SHARED]
    return fixed_pairs(paired, split, per_label, seed, batch_size, classes=classes)


def unseen_corpus_report(
    model: torch.nn.Module,
    temperatures: dict[str, float],
    pools: dict,
    items: list[Item],
    voices: dict[str, tuple[Pool, dict]],
    per_label: int,
    seed: int,
    device: torch.device,
) -> dict:
    """Per direction of ``voices`` (`unseen_corpus_voices` of the test split): the stitch's correlations and, per
    combination, accuracy, ECE and the collapse check on leave-one-corpus-out pairs, as they are and with each voice
    moved by one seeded session of its speaker's other clips, and `disagreement_report`."""
    speaker_of = {item.id: item.group for item in items if item.modality is Modality.AUDIO}
    report = {}
    for direction, (audio, stitch) in voices.items():
        sessions = SpeakerSessions.of(audio.vectors, audio.ids, speaker_of, model.audio_mean.cpu().numpy())
        moved = Pool(sessions.all_moved(seed), audio.labels, audio.sources, audio.ids)

        def predicted(voices: Pool) -> dict:
            batches = [b.to(device) for b in unseen_corpus_pairs(pools, voices, "test", per_label, seed)]
            return predict_conditions(model, batches, CONDITIONS, device)

        predictions = predicted(audio)
        report[direction] = {
            "clips": len(audio.labels),
            "stitch": stitch,
            "conditions": _conditions(predictions, temperatures),
            "voice_session": _conditions(predicted(moved), temperatures),
            "disagreement": disagreement_report(predictions),
        }
    return report


def _conditions(predictions: dict, temperatures: dict[str, float]) -> dict:
    return {
        condition: {
            "accuracy": float((logits.argmax(1) == labels).mean()),
            "ece": expected_calibration_error(softmax(logits, temperatures[condition]), labels),
            **collapse_check(labels, logits, EKMAN),
        }
        for condition, (labels, logits) in predictions.items()
    }


def _encode(encoder: SpeechEmotionEncoder, clips: list[Item]) -> np.ndarray:
    return encoder.encode([prepare_audio(item.path).samples for item in clips]).numpy()
