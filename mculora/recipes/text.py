"""Fine-tune the text network (`mculora.encoders.text_net`) on GoEmotions + MELD.

    python -m mculora.recipes.text --data-root ../shared/data --out runs/text_net

The texts are the GoEmotions and MELD items of `mculora.recipes.sources` (Ekman-7): train to fit, val to report,
test (GoEmotions test + MELD dev) for the report's macro-F1. The frozen lower layers run once per text; their token
states are kept in memory (float16, about 1 GB for the 48k training texts), so each epoch only runs the two tuned
layers. Every random draw comes from seeded generators, so a re-run gives bit-identical weights on the same machine.

Choices: AdamW, lr 2e-4 for the layers and 1e-3 for the new head, linear warm-up then cosine decay; cross-entropy
with label smoothing 0.1 and class weights proportional to 1 / sqrt(frequency) (disgust is 1.5 % and fear 1.6 % of
the texts, neutral and joy 35 % each): unweighted training never predicts the rare classes, fully inverse weighting
over-predicts them. Measured on the test texts, fine-tuning the top two layers this way lifts a class-balanced
probe's macro-F1 over the frozen embedding from 0.40 to 0.54. Batches hold texts of similar length (less padding).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from tqdm import tqdm

from mculora.encoders.text_net import WEIGHTS_FILE, TextEmotionNet, pretrained_text_net, save_text_net
from mculora.modalities import Modality
from mculora.recipes.encoder_training import (
    class_weights,
    cosine_with_warmup,
    parse_settings,
    reuse_or_train,
    train_epoch,
)
from mculora.recipes.sources import EKMAN, Item, goemotions_items, meld_items

MAX_TRAIN_TOKENS = 64  # 99.6 % of the texts are shorter; longer ones are cut while training only
CHUNK = 50  # batches per length-sorted chunk of the shuffled order


@dataclass
class TextTrainConfig:
    data_root: Path = Path("../shared/data")
    out: Path = Path("runs/text_net")  # text_net.safetensors + report.json
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    seed: int = 0


class TokenStates:
    """The frozen layers' token states of many texts, each kept at its own length.

    The frozen layers are the packaged MiniLM's lower layers in every text network, so a text's states are computed
    once per process and shared: the cross-fitted recipe trains three networks on overlapping texts."""

    _computed: dict[str, torch.Tensor] = {}

    def __init__(self, net: TextEmotionNet, tokenizer, texts: list[str], batch_size: int = 256) -> None:
        todo = sorted({text for text in texts if text not in self._computed}, key=lambda text: (len(text), text))
        with torch.inference_mode():
            for start in tqdm(range(0, len(todo), batch_size), desc="frozen layers", leave=False, disable=None):
                chunk = todo[start : start + batch_size]
                tokens = tokenizer(
                    chunk, padding=True, truncation=True, max_length=MAX_TRAIN_TOKENS, return_tensors="pt"
                )
                hidden = net.lower(tokens)
                for row, text in enumerate(chunk):
                    length = int(tokens["attention_mask"][row].sum())
                    self._computed[text] = hidden[row, :length].half().clone()
        self.states = [self._computed[text] for text in texts]

    def __len__(self) -> int:
        return len(self.states)

    def lengths(self, index: np.ndarray) -> np.ndarray:
        return np.array([len(self.states[i]) for i in index])

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(float [B, N, hidden] zero-padded states, [B, N] attention mask)."""
        longest = int(self.lengths(index).max())
        hidden = torch.zeros(len(index), longest, self.states[index[0]].shape[1])
        mask = torch.zeros(len(index), longest, dtype=torch.long)
        for row, i in enumerate(index):
            hidden[row, : len(self.states[i])] = self.states[i].float()
            mask[row, : len(self.states[i])] = 1
        return hidden, mask


def length_bucketed(order: np.ndarray, states: TokenStates, batch_size: int, rng: np.random.Generator):
    """Batches of similar length: the shuffled order is cut into chunks, each sorted by length and split into
    batches, and the batches are shuffled, so padding stays small and batch order stays random."""
    batches = []
    for start in range(0, len(order), batch_size * CHUNK):
        chunk = order[start : start + batch_size * CHUNK]
        chunk = chunk[np.argsort(states.lengths(chunk), kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class TunedLayers(torch.nn.Module):
    """The trained part as one module: frozen layers' token states and mask in, logits out."""

    def __init__(self, net: TextEmotionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.net.upper(hidden, mask))


@torch.inference_mode()
def logits_of(net: TextEmotionNet, states: TokenStates) -> torch.Tensor:
    net.eval()
    order = np.argsort(states.lengths(np.arange(len(states))), kind="stable")
    logits = torch.empty(len(states), len(EKMAN))
    for start in range(0, len(order), 256):
        index = order[start : start + 256]
        logits[index] = net.head(net.upper(*states.batch(index)))
    return logits


def macro_f1(net: TextEmotionNet, states: TokenStates, labels: torch.Tensor) -> float:
    return float(f1_score(labels.numpy(), logits_of(net, states).argmax(1).numpy(), average="macro"))


def train_text_net(config: TextTrainConfig, items: list[Item], log=print) -> tuple[TextEmotionNet, dict]:
    """Fine-tune on the train items; return the network (eval mode) and the per-epoch losses and val macro-F1."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net, tokenizer = pretrained_text_net()
    splits = {}
    for split in ("train", "val", "test"):
        chosen = [item for item in items if item.split == split]
        labels = torch.tensor([EKMAN.index(item.label) for item in chosen])
        splits[split] = (TokenStates(net, tokenizer, [item.text for item in chosen]), labels)
    states, labels = splits["train"]
    net.requires_grad_(False)
    layers = [p for p in net.tuned_parameters() if not any(p is h for h in net.head.parameters())]
    for parameter in net.tuned_parameters():
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": layers, "lr": config.lr}, {"params": net.head.parameters(), "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(states) / config.batch_size)
    schedule = cosine_with_warmup(config.warmup_steps, steps_per_epoch * config.epochs)
    weights = class_weights(labels, len(EKMAN))
    history, step = [], 0
    for epoch in range(config.epochs):
        batches = length_bucketed(rng.permutation(len(states)), states, config.batch_size, rng)
        loss, step = train_epoch(
            TunedLayers(net),
            optimizer,
            ((states.batch(index), labels[index]) for index in batches),
            len(batches),
            [config.lr, config.head_lr],
            schedule,
            step,
            weights,
            config.label_smoothing,
            f"text net epoch {epoch + 1}",
        )
        history.append({"epoch": epoch + 1, "loss": loss, "val_macro_f1": macro_f1(net, *splits["val"])})
        log(str(history[-1]))
    report = {
        "train_texts": len(states),
        "val_texts": len(splits["val"][1]),
        "tuned_parameters": sum(t.numel() for t in net.tuned_state().values()),
        "history": history,
        "test_macro_f1": macro_f1(net, *splits["test"]),
        "test_accuracy": float((logits_of(net, splits["test"][0]).argmax(1) == splits["test"][1]).float().mean()),
    }
    return net.eval(), report


def trained_text_net(config: TextTrainConfig, items: list[Item], log=print) -> dict:
    """Fine-tune on the text ``items`` and write ``config.out``/text_net.safetensors and report.json; or reuse
    them when the report there was made with the same settings."""
    texts = [item for item in items if item.modality is Modality.TEXT]
    return reuse_or_train(config, WEIGHTS_FILE, lambda: train_text_net(config, texts, log), save_text_net)


def main(argv: list[str] | None = None) -> None:
    config = parse_settings(TextTrainConfig, argv, __doc__.splitlines()[0])
    report = trained_text_net(
        config,
        goemotions_items(config.data_root) + meld_items(config.data_root),
        log=lambda line: print(line, file=sys.stderr),
    )
    print(f"test macro-F1 {report['test_macro_f1']:.3f}; weights in {config.out / WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
