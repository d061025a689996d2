"""The shipped default checkpoint, reproducible with one command.

    python -m mculora.recipes.default --data-root ../shared/data        (or: make checkpoint)
    python -m mculora.recipes.default --data-root ../shared/data --method mplmm     (a peer: checkpoints/mplmm)

1. List the real corpora (`mculora.recipes.sources`): GoEmotions + MELD text, RAVDESS + EmoDB speech, FER-2013 faces,
   all mapped to Ekman-7, split without speaker / actor / source leakage.
2. Train the face network on the run-time path's crops of FER-2013's training split (`mculora.recipes.face`),
   fine-tune the text network on GoEmotions + MELD train (`mculora.recipes.text`) and train the speech network on
   RAVDESS + EmoDB's training speakers with augmented copies (`mculora.recipes.speech`): once on all training
   items (the served networks) and once per fold without that fold's speakers, dialogues and images
   (`mculora.recipes.cross_fitting`). Extract features with the demo's offline encoders (`mculora.data.extract`):
   validation and test items through the served networks, each training item through the networks that held it
   out (`mculora.recipes.features`). All is cached in ``--work``; an interrupted run resumes.
3. Train MCULoRA (or ``--method``, a peer of `mculora.training.methods`) over all 7 modality combinations with DPFT. The
   corpora were not recorded together, so each training sample is built by label-conditioned pairing: one text,
   one speech clip and one face of the same label, drawn afresh every epoch, labels drawn uniformly
   (class-balanced). The model is selected on validation pairs.
4. Evaluate on the test splits: fixed label-paired test samples under each of the 7 conditions, each modality alone
   on its own natural test sets, the IEMOCAP-4 label subset, the collapse check, and the speech network on the
   corpus it never heard (`mculora.recipes.speech_transfer`).
5. Separately, a genuinely paired benchmark: RAVDESS speech + the same performances' facial action units, with
   speaker-independent folds (its own small checkpoint, since its visual features are not the demo's).
6. Write ``--out``: model.safetensors, the three encoder networks' weights, config.json, metrics.json,
   confusion_matrices.png and the model card.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import typing
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mculora.checkpoint import CheckpointConfig, save_checkpoint
from mculora.data import Batch
from mculora.device import select_device
from mculora.encoders import copy_encoder_weights, describe_encoders
from mculora.modalities import MODALITIES, Modality
from mculora.model import MCULoRAConfig
from mculora.recipes import face_crops, model_card, person_adaptation, speech_transfer
from mculora.recipes.cross_fitting import LOGITS, network_accuracy
from mculora.recipes.features import cross_fitted_networks, extract_features
from mculora.recipes.pairing import Pool, fixed_pairs, paired_batch, unimodal_batches, with_feature_noise
from mculora.recipes.ravdess_au import ravdess_au_benchmark
from mculora.recipes.recipe_config import RecipeConfig
from mculora.recipes.sources import EKMAN, SPLITS, Item, all_items, subsample
from mculora.recipes.speaker_sessions import SpeakerSessions
from mculora.recipes.unseen_corpus import unseen_corpus_pairs, unseen_corpus_report, unseen_corpus_voices
from mculora.training.adapter_health import adapter_health
from mculora.training.calibration import calibration_report, fit_temperatures
from mculora.training.config import TrainConfig, settings_of, without_none
from mculora.training.evaluate import CONDITIONS, disagreement_report, predict_conditions
from mculora.training.methods import METHODS, build_method
from mculora.training.metrics import classification_report, collapse_check
from mculora.training.train import Workers, feature_statistics, fit, seed_everything

IEMOCAP4 = ("anger", "happiness", "neutral", "sadness")
UNIMODAL_TESTS = {
    Modality.TEXT: ("goemotions", "meld"),
    Modality.AUDIO: ("ravdess", "emodb"),
    Modality.VISION: ("fer2013",),
}


# The fixed label-paired validation and test samples are drawn with these offsets from the recipe's seed (the
# training pairs, drawn afresh every epoch, from the seed itself; a fixed draw of them measures the fit).
PAIR_SEED_OFFSETS = {"val": 1, "test": 2, "train": 3}


def recipe_pairs(pools: dict, config: RecipeConfig, split: str) -> list[Batch]:
    """The recipe's fixed label-paired samples of ``split``."""
    return fixed_pairs(pools, split, config.pairs_per_label, config.seed + PAIR_SEED_OFFSETS[split])


def voice_sessions(pools: dict, items: list[Item], split: str) -> SpeakerSessions:
    """Sessions over the voices of ``split``, moving them towards the training voices' mean (the fusion's)."""
    pool = pools[Modality.AUDIO, split]
    speaker_of = {item.id: item.group for item in items if item.modality is Modality.AUDIO}
    return SpeakerSessions.of(pool.vectors, pool.ids, speaker_of, pools[Modality.AUDIO, "train"].vectors.mean(0))


def with_sessions(pools: dict, items: list[Item], split: str, seed: int) -> dict:
    """``pools`` with the voices of ``split`` each moved by one seeded session of their speaker's other clips."""
    pool = pools[Modality.AUDIO, split]
    moved = Pool(voice_sessions(pools, items, split).all_moved(seed), pool.labels, pool.sources, pool.ids)
    return {**pools, (Modality.AUDIO, split): moved}


def recipe_items(config: RecipeConfig) -> list[Item]:
    """Every item of the real corpora, or with ``--tiny`` a few per label and split."""
    items = all_items(config.data_root)
    return subsample(items, per_label_split=6, seed=config.seed) if config.tiny else items


# -- evaluation --------------------------------------------------------------------------------------------------


def report(labels: np.ndarray, logits: np.ndarray, label_subset: tuple[str, ...] | None = None) -> dict:
    """The model card's metrics over all labels, or with the prediction restricted to ``label_subset``."""
    if label_subset is None:
        return classification_report(labels, logits, EKMAN)
    columns = [EKMAN.index(name) for name in label_subset]
    keep = np.isin(labels, columns)
    remap = {c: i for i, c in enumerate(columns)}
    return classification_report(np.array([remap[c] for c in labels[keep]]), logits[keep][:, columns], label_subset)


def evaluate_default(
    model, pools: dict, config: RecipeConfig, device, temperatures: dict[str, float], items: list[Item]
) -> dict:
    test_pairs = [b.to(device) for b in recipe_pairs(pools, config, "test")]
    session_pairs = recipe_pairs(with_sessions(pools, items, "test", config.seed), config, "test")
    dims = {m: pools[m, "test"].vectors.shape[1] for m in MODALITIES}
    unimodal, collapse = {}, {}
    for modality, sources in UNIMODAL_TESTS.items():
        pool = pools[modality, "test"]
        for source in (*sources, "all"):
            mask = np.ones(len(pool.labels), bool) if source == "all" else pool.sources == source
            if mask.any():
                batches = unimodal_batches(pool, modality, dims, mask)
                condition = modality.value[0]
                outputs = predict_conditions(model, batches, [condition], device)[condition]
                unimodal[f"{modality.value}/{source}"] = report(*outputs)
                collapse[f"{modality.value}/{source}"] = collapse_check(*outputs, EKMAN)
    paired = predict_conditions(model, test_pairs, CONDITIONS, device)
    return {
        "paired_test": {c: report(*outputs) for c, outputs in paired.items()},
        # The test pairs are class-balanced already; each modality's own test set is drawn balanced.
        "collapse": {**collapse, **{c: collapse_check(*outputs, EKMAN) for c, outputs in paired.items()}},
        "disagreement": disagreement_report(paired),
        "iemocap4_subset": {c: report(*outputs, IEMOCAP4) for c, outputs in paired.items()},
        "unimodal_test": unimodal,
        "calibration": calibration_report(paired, temperatures),
        # The same test pairs, each voice moved by a session of its speaker's other test clips.
        "calibration_voice_session": calibration_report(
            predict_conditions(model, [b.to(device) for b in session_pairs], CONDITIONS, device), temperatures
        ),
    }


def cross_fitting_report(model, pools: dict, config: RecipeConfig, val_pairs: list[Batch], device) -> dict:
    """How test-like the training features are: each encoder network's accuracy on the training items it held out
    (out of fold) beside validation, and the fusion's accuracy on a fixed draw of training pairs beside validation
    pairs (all three modalities)."""
    fit = {}
    for split, pairs in (("train", [b.to(device) for b in recipe_pairs(pools, config, "train")]), ("val", val_pairs)):
        labels, logits = predict_conditions(model, pairs, ["atv"], device)["atv"]
        fit[f"{split}_pairs_accuracy"] = float((logits.argmax(1) == labels).mean())
    return {
        "folds": config.folds,
        "fold_epoch_scale": config.fold_epoch_scale,
        "networks": {
            m.value: {
                "out_of_fold_accuracy": network_accuracy(pools[m, "train"].vectors, pools[m, "train"].labels),
                "val_accuracy": network_accuracy(pools[m, "val"].vectors, pools[m, "val"].labels),
            }
            for m in MODALITIES
        },
        "fusion": fit,
    }


# -- training ----------------------------------------------------------------------------------------------------


def train_config(config: RecipeConfig, model: MCULoRAConfig | None = None) -> TrainConfig:
    train = TrainConfig(
        method=config.method,
        lr=config.lr,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seeds=[config.fusion_training_seed],
        average_from_epoch=config.average_from_epoch,
    )
    if model is not None:
        train.model = model
    return train


def train_default(
    config: RecipeConfig,
    pools: dict,
    val_pairs: list[Batch],
    device: torch.device,
    log_path: Path,
    sessions: SpeakerSessions | None = None,
) -> tuple:
    """Train the fusion on label-paired training samples; with ``sessions`` (of the training voices) a share
    ``config.session_share`` of the voices is moved by a session of their speaker (`speaker_sessions`)."""
    settings = train_config(config)
    seed_everything(config.fusion_training_seed)
    method = build_method(config.method, settings)
    dims = {m.value: pools[m, "train"].vectors.shape[1] for m in MODALITIES}
    core = method.build_model(dims, len(EKMAN))
    core.set_input_statistics({m: feature_statistics(pools[m, "train"].vectors) for m in MODALITIES})
    core = core.to(device)
    rng = np.random.default_rng(config.fusion_training_seed)
    steps = max(1, config.samples_per_epoch // config.batch_size)
    # Noise on the descriptors and embeddings only: each encoder network's own logits (the vector's last values) carry
    # over best from out-of-fold to unseen items, and noise on them teaches the fusion to discount them.
    spread = {m: torch.from_numpy(pools[m, "train"].vectors.std(0)) for m in MODALITIES}
    for values in spread.values():
        values[-LOGITS:] = 0.0

    def epoch_batches(epoch: int):
        for _ in range(steps):
            labels = rng.integers(0, len(EKMAN), config.batch_size)
            batch = paired_batch(pools, "train", labels, rng, sessions, config.session_share)
            yield with_feature_noise(batch, config.feature_noise, spread) if config.feature_noise else batch

    log_path.unlink(missing_ok=True)

    def log(entry: dict) -> None:
        with log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    result = fit(
        settings,
        method,
        core,
        epoch_batches,
        val_pairs,
        "classification",
        device,
        Workers(),
        config.fusion_training_seed,
        log=log,
        description="default checkpoint",
    )
    return core, settings, result


# -- the command -------------------------------------------------------------------------------------------------


def run(config: RecipeConfig) -> dict:
    start = time.perf_counter()
    device = select_device(config.device)
    config.work.mkdir(parents=True, exist_ok=True)
    items = recipe_items(config)
    print(f"{len(items)} items from {config.data_root}", file=sys.stderr)
    weights, fold_weights, encoder_reports = cross_fitted_networks(config, items)
    encoders_trained = time.perf_counter()
    pools, extractors, stitches = extract_features(config, items, device, weights, fold_weights)
    extractor = extractors[0]
    extracted = time.perf_counter()

    val_pairs = [b.to(device) for b in recipe_pairs(pools, config, "val")]
    log_path = config.work / f"training_log_{config.method}.jsonl"
    sessions = voice_sessions(pools, items, "train")
    model, settings, result = train_default(config, pools, val_pairs, device, log_path, sessions)
    trained = time.perf_counter()
    # The speech network where it matters most: on the corpus it never heard (its fold networks' epochs).
    transfer = speech_transfer.run(
        [item for item in items if item.modality is Modality.AUDIO],
        epochs=max(1, round(config.speech_epochs * config.fold_epoch_scale)),
        variants=[config.speech_augment_variants],
        out=config.work / "speech_transfer",
        seed=config.seed,
        band_normalised=config.speech_band_normalised,
    )

    def corpus_voices(split: str) -> dict:
        audio = extractor.folders[Modality.AUDIO]
        work = config.work / "speech_transfer"
        return unseen_corpus_voices(items, audio, work, config.speech_augment_variants, split, config.seed)

    transferred = time.perf_counter()
    # Fitted where the users are: on validation speakers no network trained on, each pair as it is and with its
    # voice moved by a session of its speaker, and on validation speakers of the corpus a transfer network never heard.
    calibration_pairs = val_pairs + recipe_pairs(with_sessions(pools, items, "val", config.seed), config, "val")
    for voices, _ in corpus_voices("val").values():
        calibration_pairs += unseen_corpus_pairs(pools, voices, "val", config.pairs_per_label, config.seed)
    temperatures = fit_temperatures(model, [b.to(device) for b in calibration_pairs], device)
    metrics = evaluate_default(model, pools, config, device, temperatures, items)
    descriptor = extractor.encoders[Modality.AUDIO].descriptor.spec()
    au_metrics, au_model, au_encoders = ravdess_au_benchmark(config, train_config(config), pools, descriptor, device)
    metrics["speech_transfer"] = transfer
    metrics["unseen_corpus"] = unseen_corpus_report(
        model,
        temperatures,
        pools,
        items,
        corpus_voices("test"),
        config.pairs_per_label,
        config.seed + PAIR_SEED_OFFSETS["test"],
        device,
    )
    finished = time.perf_counter()

    metrics["ravdess_au"] = au_metrics
    metrics["cross_fitting"] = {**cross_fitting_report(model, pools, config, val_pairs, device), "stitches": stitches}
    if config.method == "mcu-lora":
        metrics["adapters"] = adapter_health(model, val_pairs, "classification", settings.dpft.divergence)
    metrics["data"] = {
        f"{m.value}/{split}": {
            "items": int(len(pools[m, split].labels)),
            "per_label": {EKMAN[c]: int((pools[m, split].labels == c).sum()) for c in range(len(EKMAN))},
        }
        for m in MODALITIES
        for split in SPLITS
    }
    metrics["training"] = {
        "method": config.method,
        "best_epoch": result.best_epoch,
        "epochs": config.epochs,
        "val_score": result.best_score,
        "seconds_per_epoch_median": float(np.median(result.epoch_seconds)),
        "parameters": model.parameter_counts(),
        "recipe": {k: str(v) for k, v in asdict(config).items()},
        "model": settings_of(settings.model),
        "optimizer": {
            "lr": settings.lr,
            "weight_decay": settings.weight_decay,
            "lora_plus_ratio": settings.lora_plus_ratio,
        },
        "dpft": asdict(settings.dpft),
    }
    metrics.update(encoder_reports)
    metrics["encoders"] = {
        m.value: {**extractor.encoders[m].spec(), "trained_parameters": extractor.encoders[m].trained_parameters()}
        for m in MODALITIES
    }
    metrics["timing_s"] = {
        "encoder_networks": encoders_trained - start,
        "extraction": extracted - encoders_trained,
        "extraction_cumulative": sum(each.seconds_spent() for each in extractors),
        "face_crops": face_crops.seconds_spent(config.work / "face_crops"),
        "training": trained - extracted,
        "speech_transfer": transferred - trained,
        "evaluation_and_au_benchmark": finished - transferred,
        "total": finished - start,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {device}",
    }

    def save(directory: Path, network: torch.nn.Module, encoders: dict, dataset: str, training: dict, **extra) -> None:
        save_checkpoint(
            directory,
            network,
            CheckpointConfig(
                model=network.config,
                task="classification",
                label_names=list(EKMAN),
                method=config.method,
                architecture=network.architecture,
                encoders=encoders,
                dataset=dataset,
                training={"seed": config.fusion_training_seed, **training},
                **extra,
            ),
        )

    offline = describe_encoders("offline", extractor.encoders)
    save(
        config.out,
        model,
        offline,
        "ekman7-paired",
        {"best_epoch": result.best_epoch, "recipe": "mculora.recipes.default"},
        temperatures=temperatures,
    )
    copy_encoder_weights(weights, config.out)
    save(config.out / "ravdess_au", au_model, au_encoders, "ravdess-au", {"fold": 1})
    metrics["person_adaptation"] = person_adaptation.measure(config.out, config.data_root, config.tiny)
    (config.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    # A peer's card sets its per-condition results beside the MCULoRA checkpoint's, on the same test pairs.
    default_metrics = config.out.parent / "default" / "metrics.json"
    versus = (
        json.loads(default_metrics.read_text()) if config.method != "mcu-lora" and default_metrics.is_file() else None
    )
    model_card.write(config.out, metrics, versus)
    print(model_card.summary_table(metrics))
    return metrics


def tiny_settings(config: RecipeConfig) -> RecipeConfig:
    """With ``--tiny`` (and the default epochs): a few epochs of everything, for a pipeline check."""
    if config.tiny and config.epochs == RecipeConfig.epochs:
        config.epochs, config.au_epochs, config.samples_per_epoch, config.pairs_per_label = 2, 2, 512, 6
        config.face_epochs = config.text_epochs = config.speech_epochs = 1
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    hints = typing.get_type_hints(RecipeConfig)
    for name, default in asdict(RecipeConfig()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):  # --tiny / --no-speech-band-normalised
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, default=default, type=without_none(hints[name]))
    args = parser.parse_args(argv)
    config = RecipeConfig(**vars(args))
    if config.method not in METHODS:
        raise SystemExit(f"error: unknown method {config.method!r}; available: {', '.join(sorted(METHODS))}")
    config.out = Path(config.out or Path("checkpoints") / ("default" if config.method == "mcu-lora" else config.method))
    try:
        run(tiny_settings(config))
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
