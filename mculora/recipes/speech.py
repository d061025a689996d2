"""Train the speech network (`mculora.encoders.speech_net`) on the training actors and speakers of RAVDESS + EmoDB.

    python -m mculora.recipes.speech --data-root ../shared/data --out runs/speech_net

The clips are the speech items of `mculora.recipes.sources` (RAVDESS actors 01-16 and EmoDB speakers 03, 09, 10,
13, 14 train; 17-18 and 11 validate; 19-22 and 08, 12 test), read through `prepare_audio` like the demo's microphone
input. Their log-mel spectrograms sit in memory (about 1,200 clips); every random draw comes from one seeded
generator, so a re-run with the same seed gives bit-identical weights on the same machine.

Choices, for 1,200 acted clips from 21 voices: a small network (0.29 M parameters), AdamW with weight decay 0.01 and
a cosine schedule, label smoothing 0.1 and 1 / sqrt(frequency) class weights (EmoDB adds anger and drops calm, so the
classes are uneven), and augmentation that keeps the emotion: a random 3 s excerpt, two frequency masks of up to 8
bands and two time masks of up to 0.3 s (SpecAugment). Clips shorter than the longest in a batch are repeated to its
length rather than padded with silence, which the network would learn to read as a pause.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mculora.encoders.speech_net import N_MELS, WEIGHTS_FILE, LogMel, SpeechEmotionNet, fit_length, save_speech_net
from mculora.modalities import Modality
from mculora.preprocess.audio import prepare_audio
from mculora.recipes.encoder_training import (
    class_weights,
    cosine_with_warmup,
    parse_settings,
    reuse_or_train,
    shuffled_batches,
    train_epoch,
)
from mculora.recipes.sources import EKMAN, Item, emodb_items, ravdess_items

FRAMES_PER_SECOND = 100


@dataclass
class SpeechTrainConfig:
    data_root: Path = Path("../shared/data")
    out: Path = Path("runs/speech_net")  # speech_net.safetensors + report.json
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    excerpt_seconds: float = 3.0
    seed: int = 0
    # Augmented copies of each training clip under browser and phone conditions (`speech_augment`), drawn once; each
    # epoch shows every clip as one of them or as itself. 0: the clean clips only.
    augment_variants: int = 0
    band_normalised: bool = False  # `SpeechEmotionNet`'s input normalisation per mel band


# Spectrograms already computed in this process, by (item id, copy): the cross-fitted recipe and the
# leave-one-corpus-out evaluation train several networks on overlapping clips. Copy 0 is the clip itself, copy k
# its k-th augmented copy, drawn with a generator seeded by the seed and the item, whatever the other items are.
_spectra: dict[tuple[str, int, int], torch.Tensor] = {}
_LOG_MEL = LogMel()


def _spectrum(item: Item, copy: int, seed: int) -> torch.Tensor:
    key = (item.id, copy, seed if copy else 0)
    if key not in _spectra:
        clean = prepare_audio(item.path).samples
        if copy:
            from mculora.recipes.speech_augment import BrowserConditions

            rng = np.random.default_rng([seed, copy, *item.id.encode()])
            clean = BrowserConditions()(clean, rng)
        _spectra[key] = fit_length(_LOG_MEL(clean))
    return _spectra[key]


def load_clips(items: list[Item]) -> tuple[list[torch.Tensor], torch.Tensor, np.ndarray]:
    """(log-mel [N_MELS, frames] per clip, int64 labels, corpus names)."""
    return [_spectrum(item, 0, 0) for item in items], *_labels_and_sources(items)


def load_augmented_clips(
    items: list[Item], variants: int, seed: int
) -> tuple[list[list[torch.Tensor]], torch.Tensor, np.ndarray]:
    """As `load_clips`, but each clip as a list: itself, then ``variants`` copies under `BrowserConditions`."""
    spectra = [[_spectrum(item, copy, seed) for copy in range(variants + 1)] for item in items]
    return spectra, *_labels_and_sources(items)


def _labels_and_sources(items: list[Item]) -> tuple[torch.Tensor, np.ndarray]:
    labels = torch.tensor([EKMAN.index(item.label) for item in items])
    return labels, np.array([item.source for item in items])


def augmented_batch(spectra: list[torch.Tensor], excerpt: int, generator: torch.Generator) -> torch.Tensor:
    """A random excerpt of each clip with two frequency and two time masks, repeated to a common length."""

    def draw(high: int) -> int:
        return int(torch.randint(0, max(1, high), (1,), generator=generator))

    views = []
    for spectrum in spectra:
        start = draw(spectrum.shape[1] - excerpt + 1)
        view = spectrum[:, start : start + excerpt].clone()
        for _ in range(2):
            width = draw(8)
            low = draw(N_MELS - width)
            view[low : low + width] = view.mean()
            length = draw(30)
            begin = draw(view.shape[1] - length)
            view[:, begin : begin + length] = view.mean()
        views.append(view)
    frames = max(view.shape[1] for view in views)
    return torch.stack([view.repeat(1, -(-frames // view.shape[1]))[:, :frames] for view in views])


@torch.inference_mode()
def accuracy_by_corpus(net: SpeechEmotionNet, spectra, labels: torch.Tensor, sources: np.ndarray) -> dict[str, float]:
    """Accuracy per corpus, each clip whole and alone, as the encoder sees it."""
    net.eval()
    predicted = torch.tensor([int(net(spectrum[None]).argmax()) for spectrum in spectra])
    correct = (predicted == labels).numpy()
    return {source: float(correct[sources == source].mean()) for source in sorted(set(sources))}


def train_speech_net(config: SpeechTrainConfig, items: list[Item], log=print) -> tuple[SpeechEmotionNet, dict]:
    """Fit the network on the train items; return it (eval mode) with per-epoch losses and val/test accuracy."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    splits = {split: load_clips([item for item in items if item.split == split]) for split in ("val", "test")}
    train_items = [item for item in items if item.split == "train"]
    if config.augment_variants:
        variants, labels, _ = load_augmented_clips(train_items, config.augment_variants, config.seed)

        def spectra_of(batch: torch.Tensor) -> list[torch.Tensor]:
            picks = torch.randint(0, config.augment_variants + 1, (len(batch),), generator=generator)
            return [variants[i][pick] for i, pick in zip(batch.tolist(), picks.tolist(), strict=True)]

        spectra = variants
    else:
        spectra, labels, _ = load_clips(train_items)

        def spectra_of(batch: torch.Tensor) -> list[torch.Tensor]:
            return [spectra[i] for i in batch]

    net = SpeechEmotionNet(band_normalised=config.band_normalised)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(spectra) / config.batch_size)
    schedule = cosine_with_warmup(0, steps_per_epoch * config.epochs)
    weights = class_weights(labels, len(EKMAN))
    excerpt = round(config.excerpt_seconds * FRAMES_PER_SECOND)
    history, step = [], 0
    for epoch in range(config.epochs):
        batches = shuffled_batches(len(spectra), config.batch_size, generator)
        loss, step = train_epoch(
            net,
            optimizer,
            ((augmented_batch(spectra_of(batch), excerpt, generator), labels[batch]) for batch in batches),
            steps_per_epoch,
            [config.lr],
            schedule,
            step,
            weights,
            config.label_smoothing,
            f"speech net epoch {epoch + 1}",
        )
        history.append({"epoch": epoch + 1, "loss": loss})
        if (epoch + 1) % 10 == 0 or epoch + 1 == config.epochs:
            history[-1]["val_accuracy"] = accuracy_by_corpus(net, *splits["val"])
        log(str(history[-1]))
    report = {
        "train_clips": len(spectra),
        "val_clips": len(splits["val"][1]),
        "parameters": sum(p.numel() for p in net.parameters()),
        "history": history,
        "test_accuracy": accuracy_by_corpus(net, *splits["test"]),
    }
    return net.eval(), report


def trained_speech_net(config: SpeechTrainConfig, items: list[Item], log=print) -> dict:
    """Train on the speech ``items`` and write ``config.out``/speech_net.safetensors and report.json; or reuse them
    when the report there was made with the same settings."""
    clips = [item for item in items if item.modality is Modality.AUDIO]
    return reuse_or_train(config, WEIGHTS_FILE, lambda: train_speech_net(config, clips, log), save_speech_net)


def main(argv: list[str] | None = None) -> None:
    config = parse_settings(SpeechTrainConfig, argv, __doc__.splitlines()[0])
    clips = ravdess_items(config.data_root) + emodb_items(config.data_root)
    report = trained_speech_net(config, clips, log=lambda line: print(line, file=sys.stderr))
    print(f"test accuracy {report['test_accuracy']}; weights in {config.out / WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
