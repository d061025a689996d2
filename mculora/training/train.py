"""Train and evaluate a method on a benchmark under the fixed-missing protocol (7 test conditions).

    python -m mculora.training.train --dataset iemocap4 --data-root PATH [--epochs N] [--seeds 1 2 3] [--out DIR]
    torchrun --nproc_per_node N -m mculora.training.train ...          # data-parallel (PyTorch DDP)

For every seed and every split (IEMOCAP: 5 leave-one-session-out folds; MOSI/MOSEI: the given split) one model is
trained over all modality combinations, selected on the validation split (never on test), and evaluated on the
test split under each condition. Results are averaged over splits, then reported as mean ± std over seeds.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from mculora.checkpoint import CheckpointConfig, save_checkpoint
from mculora.data import Batch, Dialogue, FeatureCorpus, Split, collate_dialogues, load_corpus
from mculora.device import select_device
from mculora.dpft import ModalityDraw
from mculora.encoders import copy_encoder_weights
from mculora.lora import adapter_layers
from mculora.modalities import MODALITIES, Modality, combination_index
from mculora.training.adapter_health import adapter_health, adapter_report
from mculora.training.config import TrainConfig, parse_args
from mculora.training.evaluate import CONDITIONS, evaluate_conditions, selection_score
from mculora.training.methods import Method, build_method
from mculora.training.metrics import PRIMARY_METRIC, mean_and_std, mean_metrics


@dataclass
class Workers:
    """This process's place in a data-parallel run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class RunResult:
    seed: int
    split: str
    test: dict[str, dict[str, float]]
    best_epoch: int
    best_val_score: float
    epoch_seconds: list[float] = field(default_factory=list)
    # `mculora.training.adapter_health.adapter_health` of the selected model on the selection split (empty without
    # adapters)
    dead_adapters: list[str] = field(default_factory=list)
    gradient_ratio_min: dict[str, float] = field(default_factory=dict)  # per layer kind: in_proj, layers, fusion, head
    decoupling: dict[str, dict[str, float]] = field(default_factory=dict)  # per combination


def start_workers(requested_device: str | None) -> tuple[Workers, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(requested_device)
    if world == 1:
        return Workers(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Workers(dist.get_rank(), dist.get_world_size()), device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def collate_in_batches(dialogues: list[Dialogue], batch_size: int) -> list[Batch]:
    return [collate_dialogues(dialogues[i : i + batch_size]) for i in range(0, len(dialogues), batch_size)]


def epoch_shard(names: list[str], epoch_seed: int, workers: Workers) -> list[str]:
    """A shuffled share of the training dialogues for this worker. Every worker gets the same number (the list is
    wrapped around to a multiple of the world size), so all of them take the same number of optimiser steps."""
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(epoch_seed)).tolist()
    total = math.ceil(len(order) / workers.world) * workers.world
    order = (order * math.ceil(total / len(order)))[:total]
    return [names[i] for i in order[workers.rank :: workers.world]]


def feature_statistics(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of [N, D] rows, for `MCULoRA.set_input_statistics`."""
    return torch.from_numpy(rows.mean(0)), torch.from_numpy(rows.std(0))


def input_statistics(dialogues: list[Dialogue]) -> dict[Modality, tuple[torch.Tensor, torch.Tensor]]:
    """Per-feature mean and std of each modality over the utterances that have it."""
    statistics = {}
    for m in MODALITIES:
        rows = np.concatenate([d.features[m][d.available[m]] for d in dialogues])
        if len(rows):
            statistics[m] = feature_statistics(rows)
    return statistics


def encoder_record(corpus: FeatureCorpus) -> dict:
    """What a checkpoint says about its inputs: the encoder profile and, per modality, the feature name and dim."""
    return {
        "profile": corpus.spec.encoder_profile,
        **{m.value: {"name": corpus.feature_folders[m], "dim": corpus.feature_dims[m]} for m in MODALITIES},
    }


def apply_protocol(config: TrainConfig) -> TrainConfig:
    """The settings a protocol implies. ``reference`` reproduces the reference code for parity checks against published
    numbers: no validation carve-out (selection and DPFT read the test split), DPFT's reference divergence and
    reference point (the first measurement, after epoch 1); `fit` then draws one combination per batch."""
    if config.protocol != "reference":
        return config
    config = copy.deepcopy(config)
    config.val_fraction = 0.0
    config.dpft.divergence, config.dpft.reference = "reference", "first_epoch"
    return config


def optimizer_for(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters; with ``lora_plus_ratio`` != 1 every adapter's B learns that many times faster
    than the rest (LoRA+)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    fast = [p for name, p in named if ".lora_B." in name]
    groups = [{"params": [p for name, p in named if ".lora_B." not in name]}]
    if fast:
        groups.append({"params": fast, "lr": config.lr * config.lora_plus_ratio})
    # foreach: one multi-tensor update per step instead of a Python loop over the network's ~550 tensors; the same
    # arithmetic, bit for bit (PyTorch picks it by default on CUDA only).
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def train_step(
    model: torch.nn.Module,
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    routing: ModalityDraw,
    task: str,
) -> float:
    """One optimiser step on ``batch``, each sample restricted to the modalities and adapters ``routing`` gives it."""
    device = batch.utterance_mask.device
    available = batch.available if routing.available is None else batch.available & routing.available.to(device)
    combination = None if routing.combination is None else routing.combination.to(device)
    output = model(batch.features, batch.utterance_mask, routing.modality_mask.to(device), available, combination)
    loss = method.loss(output, batch, task)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    method.after_backward(getattr(model, "module", model), output, batch, routing, task)
    optimizer.step()
    return float(loss.detach())


def pretrain(config: TrainConfig, method: Method, core, model, epoch_batches, task: str, device, description: str):
    """The first stage of a two-stage method: ``method.pretrain_epochs`` epochs on complete samples (every modality)
    training ``method.pretraining_parameters``; then the method freezes what the second stage keeps fixed."""
    trainable = {id(p) for p in method.pretraining_parameters(core)}
    frozen = [p for p in core.parameters() if id(p) not in trainable and p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    optimizer = optimizer_for(model, config)
    complete = combination_index("atv")
    model.train()
    for epoch in tqdm(range(1, method.pretrain_epochs + 1), desc=f"{description}: pre-training", leave=False):
        for batch in epoch_batches(-epoch):  # negative epochs: other shuffles than the second stage's
            batch = batch.to(device)
            train_step(
                model, method, optimizer, batch, ModalityDraw.of(torch.full((batch.batch_size,), complete)), task
            )
    for parameter in frozen:
        parameter.requires_grad_(True)
    method.freeze_after_pretraining(core)


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    epoch_seconds: list[float]


def fit(
    config: TrainConfig,
    method: Method,
    core: torch.nn.Module,
    epoch_batches: Callable[[int], Iterable[Batch]],
    val_batches: list[Batch],
    task: str,
    device: torch.device,
    workers: Workers,
    seed: int,
    conditions: Sequence[str] = CONDITIONS,
    allowed: torch.Tensor | None = None,
    log: Callable[[dict], None] | None = None,
    description: str = "training",
) -> FitResult:
    """The training loop every recipe shares: train on ``epoch_batches(epoch)``, score the validation batches under
    ``conditions`` after each epoch, keep the best-scoring weights (loaded into ``core`` at the end), and let the
    method adapt its combination sampling (DPFT). ``allowed`` restricts training combinations to some modalities.
    With ``config.average_from_epoch`` = k, from epoch k on the candidates are the running averages of the weights
    since epoch k; DPFT and the log's ``val`` still read the weights as trained."""
    epochs = config.schedule()[1]
    # Only the adapters of the combinations present in a batch get gradients, so DDP must look for unused ones.
    model = DistributedDataParallel(core, find_unused_parameters=True) if workers.world > 1 else core
    if method.pretrain_epochs:
        pretrain(config, method, core, model, epoch_batches, task, device, description)
    optimizer = optimizer_for(model, config)
    inspected = bool(adapter_layers(core))
    sampler = method.make_sampler()
    draws = torch.Generator().manual_seed(seed * 1009 + workers.rank)
    method.before_training(core, sampler, val_batches, device)
    averaged = AveragedModel(core, use_buffers=True) if config.average_from_epoch else None
    best_score, best_epoch, best_state, seconds = -math.inf, 0, copy.deepcopy(core.state_dict()), []
    bar = tqdm(range(1, epochs + 1), desc=description, disable=not workers.is_main, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        losses = []
        for batch in epoch_batches(epoch):
            batch = batch.to(device)
            if config.protocol == "reference":
                routing = sampler.sample_reference(batch.speakers, draws)
            else:
                routing = ModalityDraw.of(sampler.sample(batch.batch_size, draws, allowed))
            losses.append(train_step(model, method, optimizer, batch, routing, task))
        val_results = evaluate_conditions(core, val_batches, task, device, conditions)
        score = selection_score(val_results, task)
        candidate, candidate_score = core, score
        if averaged is not None and epoch >= config.average_from_epoch:
            averaged.update_parameters(core)
            candidate = averaged.module
            candidate_score = selection_score(
                evaluate_conditions(candidate, val_batches, task, device, conditions), task
            )
        if candidate_score > best_score:
            best_score, best_epoch, best_state = candidate_score, epoch, copy.deepcopy(candidate.state_dict())
        method.after_epoch(core, sampler, val_batches, device, val_results, task)
        seconds.append(time.perf_counter() - start)
        metric = PRIMARY_METRIC[task]
        entry = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "val_score": score,
            "val": {c: round(r[metric], 4) for c, r in val_results.items()},
            **({"val_score_averaged": candidate_score} if candidate is not core else {}),
            "seconds": seconds[-1],
        }
        bar.set_postfix(loss=f"{entry['loss']:.3f}", val=f"{score:.3f}")
        if log is not None and workers.is_main:
            if inspected:  # every adapter's size and gradient, on the first validation batch
                entry["adapters"] = adapter_report(core, val_batches[:1], task).to_dict()
            log({**entry, **sampler.state()})
    core.load_state_dict(best_state)
    return FitResult(best_epoch, best_score, seconds)


def train_split(
    config: TrainConfig,
    corpus: FeatureCorpus,
    split: Split,
    seed: int,
    device: torch.device,
    workers: Workers,
    log_file: Path | None = None,
) -> tuple[RunResult, torch.nn.Module]:
    """Train one model on ``split``; return its test results and the selected (best-validation) network. Under the
    reference protocol the test split also serves for selection and DPFT, as in the reference code."""
    batch_size = config.schedule()[0]
    task = corpus.spec.task
    seed_everything(seed)
    method = build_method(config.method, config)
    num_outputs = len(corpus.spec.label_names) if task == "classification" else 1
    core = method.build_model({m.value: d for m, d in corpus.feature_dims.items()}, num_outputs)
    if config.standardize:
        core.set_input_statistics(input_statistics([corpus.dialogues[n] for n in split.train]))
    core = core.to(device)
    test_batches = [b.to(device) for b in collate_in_batches([corpus.dialogues[n] for n in split.test], batch_size)]
    if config.protocol == "reference":
        val_batches = test_batches
    else:
        val_batches = [b.to(device) for b in collate_in_batches([corpus.dialogues[n] for n in split.val], batch_size)]

    def epoch_batches(epoch: int) -> list[Batch]:
        names = epoch_shard(split.train, seed + epoch, workers)
        return collate_in_batches([corpus.dialogues[n] for n in names], batch_size)

    def log(entry: dict) -> None:
        if log_file is not None:
            with log_file.open("a") as f:
                f.write(json.dumps({"seed": seed, "split": split.name, **entry}) + "\n")

    result = fit(
        config,
        method,
        core,
        epoch_batches,
        val_batches,
        task,
        device,
        workers,
        seed,
        log=log,
        description=f"seed {seed} {split.name}",
    )
    test = evaluate_conditions(core, test_batches, task, device, progress=workers.is_main)
    run = RunResult(seed, split.name, test, result.best_epoch, result.best_score, result.epoch_seconds)
    if adapter_layers(core):
        for key, value in adapter_health(core, val_batches, task, config.dpft.divergence).items():
            setattr(run, key, value)
    return run, core


def summarize(config: TrainConfig, corpus: FeatureCorpus, runs: list[RunResult]) -> dict:
    """Mean over splits within a seed, then mean ± std over seeds, per condition and for the 7-condition average."""
    seeds = sorted({run.seed for run in runs})
    per_seed = {
        seed: {c: mean_metrics([run.test[c] for run in runs if run.seed == seed]) for c in CONDITIONS} for seed in seeds
    }
    averages = [mean_metrics(list(conditions.values())) for conditions in per_seed.values()]
    return {
        "dataset": corpus.spec.name,
        "method": config.method,
        "task": corpus.spec.task,
        "seeds": seeds,
        "splits": sorted({run.split for run in runs}),
        "protocol": config.protocol,
        "conditions": {c: mean_and_std([per_seed[s][c] for s in seeds]) for c in CONDITIONS},
        "average": mean_and_std(averages),
        "dead_adapters_max": max(len(run.dead_adapters) for run in runs),
        "gradient_ratio_min": {
            kind: min(run.gradient_ratio_min[kind] for run in runs) for kind in runs[0].gradient_ratio_min
        },
        "decoupling": {k: mean_metrics([run.decoupling[k] for run in runs]) for k in runs[0].decoupling},
        "runs": [asdict(run) for run in runs],
    }


def markdown_table(results: dict) -> str:
    metrics = [name for name in results["average"] if not name.endswith("_std")]
    rows = [("| condition | " + " | ".join(metrics) + " |"), "|---" * (len(metrics) + 1) + "|"]
    named = [(c, results["conditions"][c]) for c in CONDITIONS] + [("average", results["average"])]
    for name, scores in named:
        cells = [f"{scores[m]:.3f} ± {scores[m + '_std']:.3f}" for m in metrics]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def run(config: TrainConfig) -> dict | None:
    """The whole protocol. Returns the results on the main worker (None on the others)."""
    if not config.data_root:
        raise SystemExit("--data-root is required: the folder holding the dataset's label pickle and features/")
    config = apply_protocol(config)
    workers, device = start_workers(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
    corpus = load_corpus(config.dataset, config.data_root)
    splits = corpus.splits(config.val_fraction, seed=0)
    if config.folds:
        unknown = [f for f in config.folds if not 1 <= f <= len(splits)]
        if unknown:
            raise SystemExit(f"--folds {unknown}: {config.dataset} has folds 1..{len(splits)}")
        splits = [splits[f - 1] for f in config.folds]
    out = Path(config.out) if config.out else None
    log_file = None
    if out is not None and workers.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log_file = out / "training_log.jsonl"
        log_file.unlink(missing_ok=True)

    runs, parameters = [], None
    for seed in config.seeds:
        for split in splits:
            result, model = train_split(config, corpus, split, seed, device, workers, log_file)
            runs.append(result)
            parameters = model.parameter_counts()
            if workers.is_main:
                print(
                    f"seed {seed} {split.name}: best epoch {result.best_epoch}, val score {result.best_val_score:.3f}, "
                    f"{np.median(result.epoch_seconds):.2f} s/epoch (median)",
                    file=sys.stderr,
                )
            if out is not None and workers.is_main:
                directory = save_checkpoint(
                    out / "checkpoints" / f"seed{seed}-{split.name}",
                    model,
                    CheckpointConfig(
                        model=model.config,
                        task=corpus.spec.task,
                        label_names=list(corpus.spec.label_names),
                        method=config.method,
                        architecture=model.architecture,
                        dataset=corpus.spec.name,
                        encoders=encoder_record(corpus),
                        training={"seed": seed, "split": split.name, "best_epoch": result.best_epoch},
                    ),
                )
                copy_encoder_weights(corpus.root, directory)
                # This run's test results per combination, for the model card that `mculora.hosting.hub push` writes.
                (directory / "metrics.json").write_text(json.dumps({"test": result.test}))
    if workers.world > 1:
        dist.barrier()
    if not workers.is_main:
        return None
    results = summarize(config, corpus, runs)
    results["parameters"] = parameters
    results["world_size"] = workers.world  # processes that trained together (torchrun), for the record
    results["seconds_per_epoch_median"] = float(np.median([s for r in runs for s in r.epoch_seconds]))
    if out is not None:
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\n{results['method']} on {results['dataset']} ({len(results['seeds'])} seed(s), splits: "
        f"{', '.join(results['splits'])}); parameters: {parameters['total']:,} "
        f"(adapters {parameters['adapters']:,}); {results['seconds_per_epoch_median']:.2f} s/epoch\n"
    )
    print(markdown_table(results))
    if results["decoupling"]:
        ratios = ", ".join(f"{kind} {value:.1e}" for kind, value in results["gradient_ratio_min"].items())
        print(f"\ndead adapters (most in one run): {results['dead_adapters_max']}; smallest gradient ratio: {ratios}")
    return results


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv, description=__doc__.splitlines()[0])
    try:
        run(config)
        if dist.is_initialized():
            # Tear gloo/NCCL down together: a worker leaving while the main one still writes can abort it.
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
