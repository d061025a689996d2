"""Adapter health of a model: how large each adapter is, whether gradient reaches it, and whether the combination
streams are decoupled from the shared one and from each other.

    python -m mculora.training.adapter_health CHECKPOINT [--samples 64] [--utterances 1] [--seed 0] [--json FILE]

Weight norms alone say little (a randomly initialised adapter is large and may still never learn), so the verdict
is the gradient: for each combination k, a cross-entropy (or squared-error) loss on inputs with only k's modalities,
routed to k, is differentiated once, and each layer's k-adapter gradient norm is compared with the shared adapter's in
the same layer and the same pass. An adapter on k's path (its modality's input projection and MLP layers, fusion,
head) whose ratio is below 1e-3 is *dead*. The trainer logs the same report every epoch.

A checkpoint carries no data, so the command probes it with inputs drawn from its own input statistics (standard
normal where it has none) and uniformly drawn labels; gradient flow is a property of the weights along the path.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mculora.checkpoint import CheckpointError, load_checkpoint
from mculora.data import Batch
from mculora.dpft import combination_divergence, probe_combinations
from mculora.lora import SHARED, adapter_layers
from mculora.modalities import COMBINATIONS, MODALITIES, Modality, combination_modalities, index_to_mask
from mculora.training.evaluate import outputs_under
from mculora.training.methods import task_loss

ADAPTERS = (SHARED, *COMBINATIONS)
DEAD_RATIO = 1e-3  # a routed adapter whose gradient is below this share of the shared adapter's does not learn


def on_path(layer: str, combination: int) -> bool:
    """Whether a combination's samples pass through ``layer`` with real input: its modalities' layers, fusion, head."""
    section, _, rest = layer.partition(".")
    if section in ("in_proj", "layers"):
        return Modality(rest.split(".")[0]) in combination_modalities(combination)
    return True


@dataclass
class AdapterReport:
    weight: dict[str, dict[str, float]]  # layer -> adapter -> ||B A||_F
    gradient: dict[str, dict[str, float]]  # layer -> adapter -> gradient norm (shared: the mean over the 7 probes)
    ratio: dict[str, dict[str, float]]  # layer -> combination -> its gradient / the shared one's, same probe (on path)

    def dead(self, threshold: float = DEAD_RATIO) -> list[tuple[str, str]]:
        """(layer, combination) of every routed adapter whose gradient ratio is below ``threshold``."""
        return [(layer, k) for layer, row in self.ratio.items() for k, r in row.items() if not r >= threshold]

    def to_dict(self) -> dict:
        return {**asdict(self), "dead": [f"{layer}/{k}" for layer, k in self.dead()]}


def adapter_report(
    model: torch.nn.Module, batches: Sequence[Batch], task: str, combinations: Sequence[str] = COMBINATIONS
) -> AdapterReport:
    """Weight and gradient norms of every adapter (see the module docstring), probing ``combinations`` (a model
    trained on some modalities only serves their combinations). Leaves the parameters' ``.grad`` alone, so the
    trainer can call it between steps; dropout is off while it runs."""
    layers = adapter_layers(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        weight = {
            name: {a: float((layer.lora_B[a].weight @ layer.lora_A[a].weight).norm()) for a in ADAPTERS}
            for name, layer in layers.items()
        }
    gradient = {name: {} for name in layers}
    ratio = {name: {} for name in layers}
    shared_sum = {name: 0.0 for name in layers}
    indices = [COMBINATIONS.index(c) for c in combinations]
    losses = [0.0] * len(combinations)
    for batch in batches:
        batch = batch.to(device)
        # All the probes' forward passes at once, sharing each modality's shared stream (eval mode: no dropout).
        outputs = outputs_under(model, batch, index_to_mask(indices).to(device))
        for i, output in enumerate(outputs):
            losses[i] = losses[i] + task_loss(task, output.logits, batch.labels, batch.utterance_mask) / len(batches)
    for combination, k, loss in zip(combinations, indices, losses, strict=True):
        params = [
            p
            for layer in layers.values()
            for name in (SHARED, combination)
            for p in (layer.lora_A[name].weight, layer.lora_B[name].weight)
        ]
        grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
        norms = [0.0 if g is None else float(g.norm()) ** 2 for g in grads]
        for i, name in enumerate(layers):
            shared, routed = (sum(norms[4 * i + j : 4 * i + j + 2]) ** 0.5 for j in (0, 2))
            shared_sum[name] += shared
            gradient[name][combination] = routed
            if on_path(name, k):
                ratio[name][combination] = routed / shared if shared > 0 else float("inf")
    for name in layers:
        gradient[name] = {SHARED: shared_sum[name] / len(combinations), **gradient[name]}
    model.train(was_training)
    return AdapterReport(weight, gradient, ratio)


@torch.no_grad()
def decoupling(model: torch.nn.Module, batches: Sequence[Batch], form: str = "reference") -> dict[str, dict]:
    """Per combination k, on complete inputs routed to k:

    * ``separability``: DPFT's divergence between each of k's modalities' shared and combination representations
      (mean over k's modalities and the valid utterances; ``form`` as `mculora.dpft.divergence`);
    * ``distinctness``: how different the combination representation of one input is under k and under every other
      combination sharing a modality with it, ||xs_m[k] - xs_m[k']|| / ||xs_m[k]||, averaged. 0 means every
      combination computes the same representation (no decoupling at all)."""
    device = next(model.parameters()).device
    sums = {k: {"separability": 0.0, "distinctness": 0.0, "pairs": 0} for k in COMBINATIONS}
    count = 0
    for batch, outputs in probe_combinations(model, batches, device):
        valid = batch.utterance_mask
        count += int(valid.sum())
        for k, name in enumerate(COMBINATIONS):
            members = combination_modalities(k)
            out = outputs[k]
            sums[name]["separability"] += float(combination_divergence(out, k, form)[valid].sum())
            for m in members:
                here = out.combination_repr[m][valid]
                for j in range(len(COMBINATIONS)):
                    if j != k and m in combination_modalities(j):
                        there = outputs[j].combination_repr[m][valid]
                        gap = (here - there).norm(dim=-1) / here.norm(dim=-1).clamp(min=1e-12)
                        sums[name]["distinctness"] += float(gap.sum())
                        sums[name]["pairs"] += int(valid.sum())
    return {
        name: {
            "separability": s["separability"] / max(count, 1),
            "distinctness": s["distinctness"] / max(s["pairs"], 1),
        }
        for name, s in sums.items()
    }


def adapter_health(model: torch.nn.Module, batches: Sequence[Batch], task: str, form: str = "reference") -> dict:
    """What a run or a model card reports: the dead adapters (gradient on the first batch), the smallest routed /
    shared gradient ratio per layer kind (in_proj, layers, fusion, head), and the decoupling figures."""
    report = adapter_report(model, batches[:1], task)
    smallest: dict[str, float] = {}
    for layer, ratios in report.ratio.items():
        kind = layer.split(".")[0]
        smallest[kind] = min(smallest.get(kind, float("inf")), *ratios.values())
    return {
        "dead_adapters": report.to_dict()["dead"],
        "gradient_ratio_min": smallest,
        "decoupling": decoupling(model, batches, form),
    }


# -- the command -------------------------------------------------------------------------------------------------


def probe_batches(model: torch.nn.Module, num_outputs: int, samples: int, utterances: int, seed: int) -> list[Batch]:
    """Inputs drawn from the model's stored input statistics, with uniform labels (regression: standard normal)."""
    generator = torch.Generator().manual_seed(seed)
    features = {}
    for m in MODALITIES:
        mean, std = getattr(model, f"{m.value}_mean").cpu(), getattr(model, f"{m.value}_std").cpu()
        noise = torch.randn(samples, utterances, mean.numel(), generator=generator)
        features[m] = mean + std * noise
    if num_outputs > 1:
        labels = torch.randint(0, num_outputs, (samples, utterances), generator=generator)
    else:
        labels = torch.randn(samples, utterances, generator=generator)
    return [
        Batch(
            features=features,
            available=torch.ones(samples, utterances, len(MODALITIES), dtype=torch.bool),
            utterance_mask=torch.ones(samples, utterances, dtype=torch.bool),
            labels=labels,
            speakers=torch.zeros(samples, utterances, dtype=torch.long),
            names=[],
        )
    ]


def _cell(value: float) -> str:
    return f"{value:9.1e}"


def format_report(report: AdapterReport, figures: dict[str, dict] | None = None) -> str:
    """Two tables (||B A|| per adapter; routed gradient / shared gradient) and the decoupling figures."""
    header = f"{'layer':<22}" + "".join(f"{a:>10}" for a in ADAPTERS)
    lines = ["Adapter size ||B A||_F", header]
    for layer, row in report.weight.items():
        lines.append(f"{layer:<22}" + "".join(" " + _cell(row[a]) for a in ADAPTERS))
    lines += ["", f"Gradient norm (shared) and routed / shared gradient (combinations); ! = dead (< {DEAD_RATIO:g})"]
    lines.append(header)
    for layer, row in report.ratio.items():
        cells = [" " + _cell(report.gradient[layer][SHARED])]
        for k in COMBINATIONS:
            flag = "!" if row.get(k, 1.0) < DEAD_RATIO else " "
            cells.append(f"{'—':>10}" if k not in row else f" {row[k]:8.1e}{flag}")
        lines.append(f"{layer:<22}" + "".join(cells))
    dead = report.dead()
    lines += [
        "",
        f"dead adapters: {len(dead)}" + (": " + ", ".join(f"{layer}/{k}" for layer, k in dead) if dead else ""),
    ]
    if figures:
        lines += ["", f"{'combination':<12}{'separability':>14}{'distinctness':>14}"]
        lines += [f"{k:<12}{v['separability']:>14.4g}{v['distinctness']:>14.4g}" for k, v in figures.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint folder (model.safetensors + config.json)")
    parser.add_argument("--samples", type=int, default=64, help="probe samples")
    parser.add_argument("--utterances", type=int, default=1, help="utterances per probe sample (dialogue length)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument(
        "--combinations",
        nargs="+",
        choices=COMBINATIONS,
        default=COMBINATIONS,
        help="the combinations to probe (default all; e.g. a v av for a model trained without text)",
    )
    args = parser.parse_args(argv)
    try:
        model, config = load_checkpoint(args.checkpoint, device="cpu")
    except (CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not adapter_layers(model):
        print(f"{args.checkpoint}: this model has no adapters ({config.method})")
        return 0
    batches = probe_batches(model, model.config.num_outputs, args.samples, args.utterances, args.seed)
    task = "classification" if model.config.num_outputs > 1 else "regression"
    report = adapter_report(model, batches, task, args.combinations)
    figures = decoupling(model, batches)
    print(format_report(report, figures))
    if args.json:
        Path(args.json).write_text(json.dumps({**report.to_dict(), "decoupling": figures}, indent=2) + "\n")
    return 1 if report.dead() else 0


if __name__ == "__main__":
    raise SystemExit(main())
