"""What the recipes that train an encoder network (face, text, speech) share: class weighting, the learning-rate
schedule, and reusing a network already trained with the same settings."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights proportional to 1 / sqrt(class frequency), averaging 1 over classes: the rare emotions (disgust,
    fear) get predicted without full inverse weighting's over-prediction of them."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    weights = counts.rsqrt()
    return weights * len(weights) / weights.sum()


def cosine_with_warmup(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """step -> learning-rate factor: linear warm-up to 1 over ``warmup_steps``, then cosine decay to 0 at
    ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps - warmup_steps)))

    return factor


def shuffled_batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches over a fresh seeded permutation of ``count`` items (the last batch may be short)."""
    order = torch.randperm(count, generator=generator)
    return (order[start : start + batch_size] for start in range(0, count, batch_size))


def train_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    count: int,
    base_lrs: Sequence[float],
    schedule: Callable[[int], float],
    step: int,
    class_weight: torch.Tensor,
    label_smoothing: float,
    description: str,
) -> tuple[float, int]:
    """One epoch of weighted, label-smoothed cross-entropy over ``batches`` (``count`` of them) of (network input,
    labels); each optimiser group's learning rate is its base rate times ``schedule(step)``. Batches are drawn
    lazily, so any random augmentation happens in step order. Returns the mean loss and the next step."""
    net.train()
    losses = []
    for inputs, labels in tqdm(batches, total=count, desc=description, leave=False, disable=None):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * schedule(step)
        logits = net(*inputs) if isinstance(inputs, tuple) else net(inputs)
        loss = F.cross_entropy(logits, labels, weight=class_weight, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
    return float(np.mean(losses)), step


def parse_settings(cls, argv: list[str] | None, description: str):
    """A recipe's settings dataclass from ``--field-name value`` flags (each defaulting to the field's default)."""
    parser = argparse.ArgumentParser(description=description)
    for name, default in asdict(cls()).items():
        parser.add_argument("--" + name.replace("_", "-"), default=default, type=type(default))
    return cls(**vars(parser.parse_args(argv)))


def reuse_or_train(
    config, weights_file: str, train: Callable[[], tuple[torch.nn.Module, dict]], save: Callable
) -> dict:
    """The report of the network in ``config.out``: read back when its report.json was written with the same
    settings (``config``'s fields) and its weights are there; otherwise ``train()`` it, ``save`` the network to
    ``config.out / weights_file`` and write the report (with the settings and the training time)."""
    report_path = Path(config.out) / "report.json"
    settings = {k: str(v) for k, v in asdict(config).items()}
    if report_path.is_file() and (Path(config.out) / weights_file).is_file():
        report = json.loads(report_path.read_text())
        if report.get("config") == settings:
            return report
    started = time.perf_counter()
    net, report = train()
    report["seconds"] = time.perf_counter() - started
    report["config"] = settings
    Path(config.out).mkdir(parents=True, exist_ok=True)
    save(net, Path(config.out) / weights_file)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
