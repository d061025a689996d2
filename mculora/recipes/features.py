"""The default recipe's features: the encoder networks, cross-fitted (`mculora.recipes.cross_fitting`), and the
vectors the fusion learns from, each training item's from the networks that held it out.

Every stage is cached in the recipe's ``--work`` folder: a network trained with the same settings and an item
already extracted by the same encoders are reused, so an interrupted `make checkpoint` resumes where it stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from mculora.data.extract import Extractor, read_manifest
from mculora.encoders import copy_encoder_weights
from mculora.modalities import MODALITIES, Modality
from mculora.recipes.cross_fitting import Stitch, held_out, without_fold
from mculora.recipes.face import FaceTrainConfig, trained_face_net
from mculora.recipes.face_crops import path_crops
from mculora.recipes.pairing import Pool
from mculora.recipes.recipe_config import RecipeConfig
from mculora.recipes.sources import EKMAN, SPLITS, Item, write_manifest
from mculora.recipes.speech import SpeechTrainConfig, trained_speech_net
from mculora.recipes.text import TextTrainConfig, trained_text_net


def encoder_networks(config: RecipeConfig, items: list[Item], name: str, epoch_scale: float = 1.0) -> tuple[Path, dict]:
    """The face, text and speech networks trained on ``items``' train splits (each reused from ``--work`` when
    trained with the same settings), in ``--work``/``name``: the folder holding their weight files, and their
    training reports. ``epoch_scale``: the fraction of the recipe's epochs they train for."""

    def epochs(count: int) -> int:
        return max(1, round(count * epoch_scale))

    face = FaceTrainConfig(
        data_root=config.data_root,
        out=config.work / name / "face_net",
        epochs=epochs(config.face_epochs),
        seed=config.seed,
        framing="path",
        crop_cache=config.work / "face_crops",
    )
    text = TextTrainConfig(
        data_root=config.data_root,
        out=config.work / name / "text_net",
        epochs=epochs(config.text_epochs),
        seed=config.seed,
    )
    speech = SpeechTrainConfig(
        data_root=config.data_root,
        out=config.work / name / "speech_net",
        epochs=epochs(config.speech_epochs),
        seed=config.seed,
        augment_variants=config.speech_augment_variants,
        band_normalised=config.speech_band_normalised,
    )

    def log(network: str):
        return lambda line: print(f"{name} {network}: {line}", file=sys.stderr)

    reports = {
        "face_net": trained_face_net(face, items, log=log("face net")),
        "text_net": trained_text_net(text, items, log=log("text net")),
        "speech_net": trained_speech_net(speech, items, log=log("speech net")),
    }
    folder = config.work / name / "encoders"
    folder.mkdir(exist_ok=True)
    for trained in (face, text, speech):
        copy_encoder_weights(trained.out, folder)
    return folder, reports


def cross_fitted_networks(config: RecipeConfig, items: list[Item]) -> tuple[Path, list[Path], dict]:
    """The served networks (all training items) and one set per fold (`mculora.recipes.cross_fitting`): the served
    weights folder, the folds' folders, and the reports (the folds' under "folds")."""
    served, reports = encoder_networks(config, items, "served")
    folds, fold_reports = [], []
    for fold in range(config.folds):
        kept = without_fold(items, fold, config.folds, config.seed)
        folder, report = encoder_networks(config, kept, f"fold{fold + 1}", config.fold_epoch_scale)
        folds.append(folder)
        fold_reports.append(report)
    return served, folds, {**reports, "folds": fold_reports}


# Training items per modality that the served networks and every fold's networks encode, for fitting the stitches.
STITCH_ITEMS = 4000


def extract_features(
    config: RecipeConfig, items: list[Item], device: torch.device, served: Path, folds: list[Path]
) -> tuple[dict, list[Extractor], dict]:
    """Run (or resume) the extraction; return {(modality, split): Pool} over the items with a usable vector, the
    extractors (the served encoders' first) and the stitches' report. Validation and test items go through the
    served encoders; each training item through the encoders of the fold that held it out, then the fold's `Stitch`
    onto the served networks' outputs, fitted on a sample of training items both encode."""
    rng = np.random.default_rng(config.seed)
    train = [item for item in items if item.split == "train"]
    sample = set()
    for modality in MODALITIES:
        ids = sorted(item.id for item in train if item.modality is modality)
        sample |= set(rng.choice(ids, min(len(ids), STITCH_ITEMS), replace=False).tolist()) if ids else set()
    held = [{item.id for item in held_out(items, fold, config.folds, config.seed)} for fold in range(len(folds))]
    jobs = [(served, "served", [item for item in items if item.split != "train" or item.id in sample])]
    jobs += [
        (folder, f"fold{fold + 1}", [item for item in train if item.id in held[fold] or item.id in sample])
        for fold, folder in enumerate(folds)
    ]
    # Faces from the one face-mesh pass the face network trained on (the mesh is most of a face's cost).
    faces = path_crops([item for item in items if item.modality is Modality.VISION], config.work / "face_crops")
    vectors, extractors = [], []
    for weights, name, chosen in jobs:
        manifest = config.work / f"manifest_{name}.csv"
        write_manifest([item for item in chosen if item.modality is not Modality.VISION], manifest)
        extractor = Extractor(config.work / "features" / name, "offline", device, weights)
        # id -> {modality: reason} for the modalities that could not be used
        done = extractor.extract(read_manifest(manifest), batch_size=128)
        found = faces.select([item.id for item in chosen if item.modality is Modality.VISION])
        found = found.select([face for face, usable in zip(found.ids, found.found, strict=True) if usable])
        encoded = extractor.encoders[Modality.VISION].encode_crops(found.crops, found.geometry).numpy()
        for face, vector in zip(found.ids, encoded, strict=True):  # kept beside the other modalities' vectors
            np.save(extractor.folders[Modality.VISION] / f"{face}.npy", vector)
        vectors.append(
            {
                **{
                    item.id: np.load(extractor.folders[item.modality] / f"{item.id}.npy")
                    for item in chosen
                    if item.id in done and item.modality.value not in done[item.id]
                },
                **dict(zip(found.ids, encoded, strict=True)),
            }
        )
        extractors.append(extractor)

    served_vectors, vectors_of, stitches = vectors[0], {}, {}
    vectors_of.update(
        {item.id: served_vectors[item.id] for item in items if item.split != "train" and item.id in served_vectors}
    )
    for fold, fold_vectors in enumerate(vectors[1:]):
        for modality in MODALITIES:
            common = [
                item.id
                for item in train
                if item.modality is modality
                and item.id in sample
                and item.id not in held[fold]
                and item.id in fold_vectors
                and item.id in served_vectors
            ]
            own = [
                item.id
                for item in train
                if item.modality is modality and item.id in held[fold] and item.id in fold_vectors
            ]
            if not own:
                continue
            if len(common) < 5:
                raise ValueError(f"fold {fold + 1}: {len(common)} {modality.value} items to fit its stitch on; need 5")
            stitch = Stitch.fit(
                np.stack([fold_vectors[i] for i in common]),
                np.stack([served_vectors[i] for i in common]),
                seed=config.seed,
            )
            stitches[f"fold{fold + 1}/{modality.value}"] = {"items": len(common), **stitch.correlation}
            vectors_of.update(zip(own, stitch(np.stack([fold_vectors[i] for i in own])), strict=True))

    pools = {}
    for modality in MODALITIES:
        for split in SPLITS:
            chosen = [
                item for item in items if (item.modality, item.split) == (modality, split) and item.id in vectors_of
            ]
            dim = extractors[0].encoders[modality].dim
            pools[modality, split] = Pool(
                np.stack([vectors_of[item.id] for item in chosen]).astype(np.float32)
                if chosen
                else np.zeros((0, dim), np.float32),
                np.array([EKMAN.index(item.label) for item in chosen], dtype=np.int64),
                np.array([item.source for item in chosen]),
                [item.id for item in chosen],
            )
    return pools, extractors, stitches
