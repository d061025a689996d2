"""The real-data corpus of the default checkpoint as a data set the trainer reads, for `mculora.training.train` and
`mculora.training.compare`.

    python -m mculora.recipes.paired_corpus --data-root ../shared/data --out runs/ekman7-paired
    python -m mculora.training.compare --dataset ekman7-paired --data-root runs/ekman7-paired --standardize true \\
        --methods mcu-lora mplmm wander cggm baseline --seeds 1 2 3 --epochs 8 --batch-size 64 --out runs/compare-ekman7

It reuses the default recipe's encoder networks and feature cache (``--work``, filled by `make checkpoint`; missing
parts are built the same way) and writes **fixed** label-paired samples: each is one utterance joining one text, one
speech clip and one face of the same label (`mculora.recipes.pairing.fixed_pair_rows`), label-balanced,
``--train-per-label`` per label for training. Validation and test are the default recipe's own pairs (same seeds
and counts), so the test set is the one of the default checkpoint's model card. Unlike the recipe, which draws new
training pairs every epoch, the trainer sees the same training pairs every epoch.

Written to ``--out``: ``features/<encoder name>/<pair id>.npy``, the label pickle, ``dataset.json`` and
``pairs.csv`` (which text, speech clip and face each pair joins).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mculora.data.extract import write_label_set
from mculora.device import select_device
from mculora.modalities import MODALITIES
from mculora.recipes.default import PAIR_SEED_OFFSETS, recipe_items, tiny_settings
from mculora.recipes.features import cross_fitted_networks, extract_features
from mculora.recipes.pairing import fixed_pair_rows
from mculora.recipes.recipe_config import RecipeConfig
from mculora.recipes.sources import EKMAN, SPLITS

NAME = "ekman7-paired"


@dataclass
class PairedCorpusConfig:
    data_root: Path = Path("../shared/data")
    work: Path = Path("runs/default")
    out: Path = Path("runs/ekman7-paired")
    train_per_label: int = 400
    seed: int = 66
    tiny: bool = False


def pair_rows(config: RecipeConfig, pools: dict, train_per_label: int) -> dict[str, tuple]:
    """split -> (labels, modality -> pool rows): new training pairs, and the recipe's validation and test pairs."""
    per_label = {"train": train_per_label, "val": config.pairs_per_label, "test": config.pairs_per_label}
    # The recipe's own seeds: its validation and test pairs, and more of its fixed draw of training pairs.
    return {
        split: fixed_pair_rows(pools, split, per_label[split], config.seed + PAIR_SEED_OFFSETS[split])
        for split in SPLITS
    }


def export(corpus: PairedCorpusConfig) -> dict[str, int]:
    recipe = tiny_settings(
        RecipeConfig(data_root=corpus.data_root, work=corpus.work, seed=corpus.seed, tiny=corpus.tiny)
    )
    recipe.work.mkdir(parents=True, exist_ok=True)
    items = recipe_items(recipe)
    weights, folds, _ = cross_fitted_networks(recipe, items)
    pools, extractors, _ = extract_features(recipe, items, select_device(None), weights, folds)
    extractor = extractors[0]  # the served encoders'
    folders = {m: corpus.out / "features" / extractor.encoders[m].name for m in MODALITIES}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    ids, per_dialogue, split_lists = {}, {"labels": {}, "speakers": {}, "texts": {}}, []
    with (corpus.out / "pairs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split", "label", *(m.value for m in MODALITIES)])
        for split, (labels, rows) in pair_rows(recipe, pools, corpus.train_per_label).items():
            names = [f"{split}-{i:05d}" for i in range(len(labels))]
            for i, name in enumerate(names):
                for m in MODALITIES:
                    np.save(folders[m] / f"{name}.npy", pools[m, split].vectors[rows[m][i]])
                writer.writerow([name, split, EKMAN[labels[i]], *(pools[m, split].ids[rows[m][i]] for m in MODALITIES)])
                # each pair is a one-utterance dialogue
                ids[name] = [name]
                per_dialogue["labels"][name] = [int(labels[i])]
                per_dialogue["speakers"][name] = [""]
                per_dialogue["texts"][name] = [""]
            split_lists.append(names)
    write_label_set(corpus.out, NAME, ids, per_dialogue, split_lists, EKMAN, "offline", extractor.encoders)
    return {split: len(names) for split, names in zip(SPLITS, split_lists, strict=True)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = PairedCorpusConfig()
    parser.add_argument("--data-root", type=Path, default=defaults.data_root)
    parser.add_argument("--work", type=Path, default=defaults.work, help="the default recipe's feature cache")
    parser.add_argument("--out", type=Path, default=defaults.out)
    parser.add_argument("--train-per-label", type=int, default=defaults.train_per_label)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="the recipe's seed (its val and test pairs)")
    parser.add_argument("--tiny", action="store_true", help="the tiny recipe's subset: a pipeline check")
    try:
        counts = export(PairedCorpusConfig(**vars(parser.parse_args(argv))))
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{NAME}: {counts} pairs", file=sys.stderr)


if __name__ == "__main__":
    main()
