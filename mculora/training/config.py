"""Training configuration: dataclasses, filled from an optional YAML file and then from command-line flags."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from mculora.dpft import DPFTConfig
from mculora.model import MCULoRAConfig
from mculora.training.methods import METHODS

# Reference schedules (batch size in dialogues/videos, epochs) per benchmark.
PROTOCOLS = ("standard", "reference")
DEFAULT_SCHEDULE = {"iemocap4": (16, 300), "iemocap6": (16, 300), "mosi": (32, 300), "mosei": (32, 200)}


@dataclass
class TrainConfig:
    dataset: str = field(default="iemocap4", metadata={"help": "iemocap4 | iemocap6 | mosi | mosei"})
    data_root: str | None = field(default=None, metadata={"help": "folder of the dataset's label pickle + features/"})
    method: str = field(default="mcu-lora", metadata={"help": "training method (see mculora.training.methods)"})
    epochs: int | None = field(default=None, metadata={"help": "default: the reference schedule of the dataset"})
    batch_size: int | None = field(default=None, metadata={"help": "dialogues per batch; default: reference"})
    lr: float = 1e-4
    weight_decay: float = 1e-5
    lora_plus_ratio: float = field(
        default=16.0,
        metadata={"help": "learning rate of every adapter's B = lr x this (LoRA+); 1 = one lr for all (paper)"},
    )
    protocol: str = field(
        default="standard",
        metadata={
            "help": "standard: validation-based selection and DPFT, per-sample combinations; reference: the reference "
            "code's protocol for parity checks (selection and DPFT on test, one combination per batch, all-missing "
            "drawn, the reference's divergence and DPFT reference point)"
        },
    )
    # The validation score of a noisy fusion moves by a point or two from epoch to epoch, so the epoch that scores
    # best is partly luck; a running average of the weights (SWA) moves less (docs/reports/generalisation.md).
    average_from_epoch: int = field(
        default=0,
        metadata={
            "help": "0: keep the best epoch's weights; k: from epoch k on, keep the best running average of the "
            "weights since epoch k instead (stochastic weight averaging)"
        },
    )
    seeds: list[int] = field(default_factory=lambda: [66], metadata={"help": "one run per seed; mean ± std"})
    folds: list[int] | None = field(default=None, metadata={"help": "1-based folds to run (IEMOCAP); default all"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of training dialogues held out for selection"})
    standardize: bool = field(
        default=False, metadata={"help": "standardise inputs with training-split statistics (kept in the checkpoint)"}
    )
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 ...; default MCULORA_DEVICE/auto"})
    out: str | None = field(default=None, metadata={"help": "write results.json, the log and checkpoints here"})
    # The network's settings (--model-hidden 64, --model-rank-in 8, ...): MCULoRA's architecture, whose backbone
    # size the other methods' networks share; the data's fields are filled in when the network is built.
    model: MCULoRAConfig = field(default_factory=MCULoRAConfig)
    dpft: DPFTConfig = field(default_factory=DPFTConfig)
    # Each method's own settings, by method name (--mplmm-prompt-length 16, --cggm-rho 1.3; `Method.settings_class`)
    method_settings: dict[str, object] = field(
        default_factory=lambda: {name: method.settings_class() for name, method in METHOD_SECTIONS.items()}
    )

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.lora_plus_ratio <= 0:
            raise ValueError("lora_plus_ratio must be > 0")
        if self.average_from_epoch < 0:
            raise ValueError("average_from_epoch must be >= 0")

    def __getattr__(self, name: str):
        # config.mplmm, config.cggm: a method's settings read like the other sections
        settings = self.__dict__.get("method_settings") or {}
        if name in settings:
            return settings[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def schedule(self) -> tuple[int, int]:
        batch, epochs = DEFAULT_SCHEDULE.get(self.dataset, (16, 100))
        return self.batch_size or batch, self.epochs or epochs


# Nested sections of TrainConfig: settings with their own dataclass, YAML mapping and flag prefix. The methods'
# sections live in ``method_settings``; in YAML and on the command line they read like the others (``mplmm:``).
METHOD_SECTIONS = {name: method for name, method in METHODS.items() if method.settings_class}
_SECTIONS = {
    "model": MCULoRAConfig,
    "dpft": DPFTConfig,
    **{name: method.settings_class for name, method in METHOD_SECTIONS.items()},
}


def _settable(cls) -> list:
    """The fields a user sets: not those the data fills in (`mculora.model.BackboneConfig`)."""
    return [f for f in fields(cls) if not f.metadata.get("from_data")]


def _from_dict(cls, data: dict, where: str):
    """Build a (nested) config dataclass from a dict, rejecting unknown keys so typos do not pass silently."""
    known = {f.name for f in _settable(cls)} - ({"method_settings"} if cls is TrainConfig else set())
    known |= set(METHOD_SECTIONS) if cls is TrainConfig else set()
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown settings {unknown}; known: {sorted(known)}")
    values, methods = {}, {}
    for name, value in data.items():
        nested = _SECTIONS.get(name) if cls is TrainConfig else None
        value = _from_dict(nested, value or {}, f"{where}.{name}") if nested else value
        (methods if name in METHOD_SECTIONS and cls is TrainConfig else values)[name] = value
    config = cls(**values)
    if methods:
        config.method_settings.update(methods)
    return config


def settings_of(config) -> dict:
    """The settable fields of a config as a dict, the methods' sections beside the others (`_from_dict`'s input)."""
    out = {}
    for f in _settable(config):
        value = getattr(config, f.name)
        out[f.name] = settings_of(value) if isinstance(config, TrainConfig) and f.name in _SECTIONS else value
    if isinstance(config, TrainConfig):
        del out["method_settings"]
        out.update({name: settings_of(section) for name, section in config.method_settings.items()})
    return out


def load_yaml(path: str | Path) -> TrainConfig:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings")
    return _from_dict(TrainConfig, data, str(path))


def _parse_bool(text: str) -> bool:
    return text.lower() in ("1", "true", "yes")


def without_none(hint):
    """The type a flag parses for a field annotated ``hint``: X for ``X | None``, else ``hint`` itself."""
    if isinstance(hint, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _add_flags(parser: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    """One flag per field, typed from the field's annotation (``X | None`` parses as X, ``list[int]`` as nargs)."""
    hints = typing.get_type_hints(cls)
    if cls is TrainConfig:
        for name in METHOD_SECTIONS:
            _add_flags(parser, _SECTIONS[name], f"{name}.")
    for f in _settable(cls):
        if f.name == "method_settings" and cls is TrainConfig:
            continue
        if cls is TrainConfig and f.name in _SECTIONS:
            _add_flags(parser, _SECTIONS[f.name], f"{f.name}.")
            continue
        hint = without_none(hints[f.name])
        kwargs: dict = {"dest": prefix + f.name, "default": argparse.SUPPRESS, "help": f.metadata.get("help")}
        if typing.get_origin(hint) is list:
            kwargs.update(nargs="+", type=typing.get_args(hint)[0])
        else:
            kwargs["type"] = _parse_bool if hint is bool else hint
        parser.add_argument("--" + (prefix + f.name).replace("_", "-").replace(".", "-"), **kwargs)


def parse_args(argv: list[str] | None = None, description: str = "") -> TrainConfig:
    """``--config FILE.yaml`` first, then every other flag overrides it (``--dpft-eta 0.01``, ``--model-depth 2``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file with TrainConfig settings")
    _add_flags(parser, TrainConfig)
    args = vars(parser.parse_args(argv))
    path = args.pop("config", None)
    merged = settings_of(load_yaml(path) if path else TrainConfig())
    for key, value in args.items():
        section, _, name = key.rpartition(".")
        (merged[section] if section else merged)[name] = value
    return _from_dict(TrainConfig, merged, "command line")
