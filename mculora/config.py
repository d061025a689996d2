"""Training configuration: dataclasses, filled from an optional YAML file and then from command-line flags."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import yaml

from mculora.dpft import DPFTConfig

# Reference schedules (batch size in dialogues/videos, epochs) per benchmark.
DEFAULT_SCHEDULE = {"iemocap4": (16, 300), "iemocap6": (16, 300), "mosi": (32, 300), "mosei": (32, 200)}


@dataclass
class ModelSettings:
    """The backbone's hyperparameters (input dims and output size come from the data)."""

    hidden: int = 256
    depth: int = 4
    heads: int = 2
    dropout: float = 0.5
    lora_dropout: float = 0.1
    rank_in: int = 4
    rank_mlp: int = 8
    rank_fusion: int = 4
    combination_branch: str = "with_base"


@dataclass
class TrainConfig:
    dataset: str = field(default="iemocap4", metadata={"help": "iemocap4 | iemocap6 | mosi | mosei"})
    data_root: str | None = field(default=None, metadata={"help": "folder of the dataset's label pickle + features/"})
    method: str = field(default="mcu-lora", metadata={"help": "training method (see mculora.methods)"})
    epochs: int | None = field(default=None, metadata={"help": "default: the reference schedule of the dataset"})
    batch_size: int | None = field(default=None, metadata={"help": "dialogues per batch; default: reference"})
    lr: float = 1e-4
    weight_decay: float = 1e-5
    seeds: list[int] = field(default_factory=lambda: [66], metadata={"help": "one run per seed; mean ± std"})
    folds: list[int] | None = field(default=None, metadata={"help": "1-based folds to run (IEMOCAP); default all"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of training dialogues held out for selection"})
    standardize: bool = field(
        default=False, metadata={"help": "standardise inputs with training-split statistics (kept in the checkpoint)"}
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ...; default MCULORA_DEVICE/auto"})
    out: str | None = field(default=None, metadata={"help": "write results.json, the log and checkpoints here"})
    model: ModelSettings = field(default_factory=ModelSettings)
    dpft: DPFTConfig = field(default_factory=DPFTConfig)

    def schedule(self) -> tuple[int, int]:
        batch, epochs = DEFAULT_SCHEDULE.get(self.dataset, (16, 100))
        return self.batch_size or batch, self.epochs or epochs


def _from_dict(cls, data: dict, where: str):
    """Build a (nested) config dataclass from a dict, rejecting unknown keys so typos do not pass silently."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown settings {unknown}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        nested = {"model": ModelSettings, "dpft": DPFTConfig}.get(name) if cls is TrainConfig else None
        values[name] = _from_dict(nested, value or {}, f"{where}.{name}") if nested else value
    return cls(**values)


def load_yaml(path: str | Path) -> TrainConfig:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return _from_dict(TrainConfig, data, str(path))


def _add_flags(parser: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    for f in fields(cls):
        if f.name in ("model", "dpft") and cls is TrainConfig:
            _add_flags(parser, {"model": ModelSettings, "dpft": DPFTConfig}[f.name], f"{f.name}.")
            continue
        default = f.default_factory() if f.default is MISSING else f.default
        flag = "--" + (prefix + f.name).replace("_", "-").replace(".", "-")
        kwargs: dict = {"dest": prefix + f.name, "default": argparse.SUPPRESS, "help": f.metadata.get("help")}
        if isinstance(default, list) or f.name in ("seeds", "folds"):
            kwargs.update(nargs="+", type=int)
        elif isinstance(default, bool):
            kwargs.update(type=lambda s: s.lower() in ("1", "true", "yes"))
        elif isinstance(default, (int, float)):
            kwargs["type"] = type(default)
        elif f.name in ("epochs", "batch_size"):
            kwargs["type"] = int
        parser.add_argument(flag, **kwargs)


def parse_args(argv: list[str] | None = None, description: str = "") -> TrainConfig:
    """``--config FILE.yaml`` first, then every other flag overrides it (``--dpft-eta 0.01``, ``--model-depth 2``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file with TrainConfig settings")
    _add_flags(parser, TrainConfig)
    args = vars(parser.parse_args(argv))
    config = load_yaml(args.pop("config")) if args.get("config") else TrainConfig()
    args.pop("config", None)
    data: dict = {}
    for key, value in args.items():
        section, _, name = key.rpartition(".")
        (data.setdefault(section, {}) if section else data)[name] = value
    merged = {f.name: getattr(config, f.name) for f in fields(TrainConfig)}
    for section in ("model", "dpft"):
        merged[section] = {
            f.name: getattr(config, section).__dict__[f.name] for f in fields(type(getattr(config, section)))
        }
        merged[section].update(data.pop(section, {}))
    merged.update(data)
    return _from_dict(TrainConfig, merged, "command line")
