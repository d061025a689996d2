"""The default recipe's genuinely paired benchmark: RAVDESS speech with the facial action units of the same
performances, in speaker-independent folds, with its own small checkpoint (its visual input is not the demo's)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mculora.data import Batch
from mculora.encoders.acoustic_descriptor import AcousticDescriptor
from mculora.modalities import Modality
from mculora.model import MCULoRAConfig
from mculora.recipes.pairing import chunked, shuffled
from mculora.recipes.recipe_config import RecipeConfig
from mculora.recipes.sources import EKMAN, RAVDESS_TO_EKMAN, SPLITS
from mculora.training.config import TrainConfig
from mculora.training.evaluate import predict_conditions
from mculora.training.methods import build_method
from mculora.training.metrics import classification_report, mean_and_std
from mculora.training.train import Workers, feature_statistics, fit, seed_everything

AU_FOLDS = 5
AU_DIM = 35  # 17 AU intensities + 18 AU presences (the clip-level OpenFace statistics)


def ravdess_au_benchmark(
    config: RecipeConfig, settings: TrainConfig, pools: dict, descriptor: dict, device: torch.device
) -> tuple[dict, torch.nn.Module, dict]:
    """Speech (the offline acoustic descriptor of the FLAC clip) + facial action units of the same performance, in
    speaker-independent folds (actors grouped by (actor - 1) mod 5). Text is absent: RAVDESS's two fixed sentences
    carry no emotion. ``settings``: the recipe's training settings, which this small model adapts; ``descriptor``:
    the spec of the audio encoder's acoustic descriptor. Returns per-condition metrics (mean ± std over folds), the
    fold-1 model and its config."""
    data = np.load(config.data_root / "ravdess_au" / "ravdess_au_audio.npz", allow_pickle=False)
    # The clips' acoustic descriptors, already extracted for the default model (every split of RAVDESS): only the
    # hand-built descriptor part, since the speech network saw actors 01-16, who are test actors in some folds here.
    speech = {
        item: vector[: AcousticDescriptor.dim]
        for split in SPLITS
        for item, vector in zip(pools[Modality.AUDIO, split].ids, pools[Modality.AUDIO, split].vectors, strict=True)
    }
    rows = [i for i, f in enumerate(data["audio_file"]) if f"ravdess-{Path(f).stem}" in speech]
    if config.tiny:
        rows = rows[:: max(1, len(rows) // 140)]
    audio = np.stack([speech[f"ravdess-{Path(data['audio_file'][i]).stem}"] for i in rows])
    units = data["features"][rows, :AU_DIM].astype(np.float32)
    labels = np.array([EKMAN.index(RAVDESS_TO_EKMAN.get(e, e)) for e in data["emotion"][rows]], dtype=np.int64)
    actors = data["actor"][rows]
    settings = replace(settings, model=MCULoRAConfig(hidden=64, depth=2), lr=1e-3, epochs=config.au_epochs)
    settings.dpft = replace(settings.dpft)
    settings.dpft.mode = "off"  # the separability probe needs all three modalities; text does not exist here
    dims = {"audio": audio.shape[1], "text": 1, "vision": AU_DIM}
    allowed = torch.tensor([True, False, True])
    conditions = ("a", "v", "av")

    def batches(mask: np.ndarray) -> list[Batch]:
        index = np.flatnonzero(mask)
        vectors = {
            Modality.AUDIO: audio[index],
            Modality.TEXT: np.zeros((len(index), 1), np.float32),
            Modality.VISION: units[index],
        }
        return chunked(vectors, labels[index], np.tile(allowed.numpy(), (len(index), 1)), 64)

    per_fold, first = [], None
    for fold in range(AU_FOLDS):
        test = (actors - 1) % AU_FOLDS == fold
        val = (actors - 1) % AU_FOLDS == (fold + 1) % AU_FOLDS
        train = ~(test | val)
        seed_everything(config.seed + fold)
        method = build_method(config.method, settings)
        model = method.build_model(dims, len(EKMAN))
        model.set_input_statistics(
            {Modality.AUDIO: feature_statistics(audio[train]), Modality.VISION: feature_statistics(units[train])}
        )
        model = model.to(device)
        fit(
            settings,
            method,
            model,
            shuffled(batches(train), np.random.default_rng(config.seed + fold)),
            [b.to(device) for b in batches(val)],
            "classification",
            device,
            Workers(),
            config.seed + fold,
            conditions=conditions,
            allowed=allowed,
            description=f"RAVDESS AU fold {fold + 1}",
        )
        test_batches = batches(test)
        predictions = predict_conditions(model, test_batches, conditions, device)
        per_fold.append({c: classification_report(*outputs, EKMAN) for c, outputs in predictions.items()})
        if first is None:
            first = model
    summary = {
        c: mean_and_std([{m: fold[c][m] for m in ("accuracy", "macro_f1", "ua")} for fold in per_fold])
        for c in conditions
    }
    encoders = {
        "profile": "ravdess-au",
        "audio": descriptor,
        "text": {"name": "none", "dim": 1},
        "vision": {"name": "openface-au-35", "dim": AU_DIM},
    }
    return {"folds": AU_FOLDS, "clips": len(rows), "conditions": summary}, first, encoders
