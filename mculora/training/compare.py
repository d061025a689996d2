"""Compare training methods under one protocol: identical splits, features, seeds and test conditions.

    python -m mculora.training.compare --dataset iemocap4 --data-root PATH --methods mcu-lora mplmm wander cggm \\
        baseline --seeds 1 2 3 --out runs/compare [any `mculora.training.train` flag, e.g. --epochs 30]

Each method is trained and evaluated by `mculora.training.train` (its own folder under ``--out``: results, log,
checkpoints), then every saved model is also tested at **random missing rates** 0.0-0.7 (the MoMKE/GCNet protocol: each
modality of each test utterance is dropped with probability r, at least one modality kept; one fixed draw per rate and
split, the same for every method). Written to ``--out``:

* ``comparison.json`` and ``comparison.md``: rows = methods; columns = the 7 fixed conditions and their average on
  the primary metric (mean ± std over seeds), trainable / total parameters and median seconds per epoch;
* ``missing_rates.json`` and ``missing_rates.png``: each method's primary metric against the missing rate.

Routing under random missing rates: a dialogue is routed to the combination of the modalities any of its utterances
still has, and each utterance's dropped modalities are zeroed and masked (for one-utterance samples this is exactly
the utterance's own combination).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mculora.checkpoint import load_checkpoint
from mculora.data import Batch, load_corpus
from mculora.model import routed_modalities
from mculora.training.config import parse_args
from mculora.training.evaluate import CONDITIONS
from mculora.training.methods import METHODS
from mculora.training.metrics import PRIMARY_METRIC, mean_and_std, task_metrics
from mculora.training.train import apply_protocol, collate_in_batches, run

MISSING_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def random_missing(batch: Batch, rate: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(sample-level modality mask [B, 3], per-utterance availability [B, L, 3]) with each modality of each utterance
    dropped with probability ``rate``; an utterance that would lose all three keeps one, chosen uniformly."""
    size, length = batch.utterance_mask.shape
    keep = torch.rand(size, length, 3, generator=generator) >= rate
    rescue = torch.nn.functional.one_hot(torch.randint(0, 3, (size, length), generator=generator), 3).bool()
    keep = torch.where(keep.any(-1, keepdim=True), keep, rescue)
    available = batch.available & keep & batch.utterance_mask[:, :, None]
    return routed_modalities(available), available


@torch.no_grad()
def missing_rate_scores(model, batches: list[Batch], task: str) -> dict[str, float]:
    """The primary metric at each missing rate, with one seeded draw of the drops per rate (the same draw for every
    model, so methods are compared on identical inputs)."""
    model.eval()
    scores = {}
    for rate in MISSING_RATES:
        generator = torch.Generator().manual_seed(round(rate * 100))
        labels, outputs = [], []
        for batch in batches:
            mask, available = random_missing(batch, rate, generator)
            logits = model(batch.features, batch.utterance_mask, mask, available).logits
            labels.append(batch.labels[batch.utterance_mask])
            outputs.append(logits[batch.utterance_mask].float())
        metrics = task_metrics(task, torch.cat(labels).numpy(), torch.cat(outputs).numpy())
        scores[f"{rate:.1f}"] = metrics[PRIMARY_METRIC[task]]
    return scores


def curves(config, method_out: Path, results: dict) -> dict[str, float]:
    """Mean over splits then mean ± std over seeds of each missing rate's score, for one method's saved models."""
    corpus = load_corpus(config.dataset, config.data_root)
    splits = {split.name: split for split in corpus.splits(config.val_fraction, seed=0)}
    batch_size = config.schedule()[0]
    per_seed: dict[int, list[dict]] = {}
    for entry in results["runs"]:
        model, _ = load_checkpoint(method_out / "checkpoints" / f"seed{entry['seed']}-{entry['split']}")
        split = splits[entry["split"]]
        batches = collate_in_batches([corpus.dialogues[n] for n in split.test], batch_size)
        per_seed.setdefault(entry["seed"], []).append(missing_rate_scores(model, batches, results["task"]))
    means = [{r: float(np.mean([s[r] for s in runs])) for r in runs[0]} for runs in per_seed.values()]
    return mean_and_std(means)


def comparison_table(comparison: dict) -> str:
    metric = comparison["metric"]
    header = ["method", *CONDITIONS, "average", "trainable / total parameters", "s / epoch"]
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, entry in comparison["methods"].items():
        cells = [
            f"{entry['conditions'][c][metric]:.3f} ± {entry['conditions'][c][metric + '_std']:.3f}" for c in CONDITIONS
        ]
        average = f"**{entry['average'][metric]:.3f}** ± {entry['average'][metric + '_std']:.3f}"
        parameters = f"{entry['parameters']['trainable']:,} / {entry['parameters']['total']:,}"
        rows.append(
            f"| {name} | " + " | ".join([*cells, average, parameters, f"{entry['seconds_per_epoch']:.2f}"]) + " |"
        )
    return "\n".join(rows)


def plot_curves(comparison: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    rates = [float(r) for r in comparison["missing_rates"]]
    for name, curve in comparison["missing_rate_curves"].items():
        means = np.array([curve[f"{r:.1f}"] for r in rates])
        stds = np.array([curve[f"{r:.1f}_std"] for r in rates])
        axes.errorbar(rates, means, yerr=stds, marker="o", capsize=3, label=name)
    axes.set_xlabel("missing rate (per utterance and modality)")
    axes.set_ylabel(comparison["metric"])
    axes.set_title(f"{comparison['dataset']}: robustness to random missing modalities")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def compare(methods: list[str], config, out: Path) -> dict:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; available: {', '.join(sorted(METHODS))}")
    config = apply_protocol(config)
    out.mkdir(parents=True, exist_ok=True)
    comparison = {"dataset": config.dataset, "seeds": list(config.seeds), "methods": {}, "missing_rate_curves": {}}
    for name in methods:
        print(f"== {name}", file=sys.stderr)
        method_config = copy.deepcopy(config)
        method_config.method, method_config.out = name, str(out / name)
        results = run(method_config)
        comparison["metric"] = PRIMARY_METRIC[results["task"]]
        comparison["methods"][name] = {
            "conditions": {c: results["conditions"][c] for c in CONDITIONS},
            "average": results["average"],
            "parameters": results["parameters"],
            "seconds_per_epoch": results["seconds_per_epoch_median"],
        }
        comparison["missing_rate_curves"][name] = curves(method_config, out / name, results)
    comparison["missing_rates"] = [f"{r:.1f}" for r in MISSING_RATES]
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2) + "\n")
    table = comparison_table(comparison)
    (out / "comparison.md").write_text(table + "\n")
    (out / "missing_rates.json").write_text(
        json.dumps({k: comparison[k] for k in ("dataset", "metric", "missing_rates", "missing_rate_curves")}, indent=2)
    )
    plot_curves(comparison, out / "missing_rates.png")
    print(table)
    return comparison


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--methods", nargs="+", default=["mcu-lora", "mplmm", "wander", "cggm", "baseline"])
    own, rest = parser.parse_known_args(argv)
    config = parse_args(rest, description=__doc__.splitlines()[0])
    if not config.out:
        raise SystemExit("--out is required: the folder for the comparison and each method's runs")
    compare(own.methods, config, Path(config.out))


if __name__ == "__main__":
    main()
