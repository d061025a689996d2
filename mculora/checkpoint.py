"""Checkpoints: ``model.safetensors`` (weights) + ``config.json`` (everything needed to rebuild and use them).

Loading validates the config and the weights against each other and fails with a `CheckpointError` that says what
is wrong, instead of a shape error deep inside torch.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mculora import __version__
from mculora.modalities import COMBINATIONS
from mculora.model import BackboneConfig
from mculora.networks import ARCHITECTURES

CHECKPOINT_FORMAT = "mculora-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TASKS = ("classification", "regression")


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used, with the reason."""


@dataclass
class CheckpointConfig:
    # The network's architecture config: `ARCHITECTURES[architecture].config_class` (MCULoRA's or a peer's).
    model: BackboneConfig
    task: str
    label_names: list[str]
    method: str
    encoders: dict = field(metadata={"help": "the feature extractors the inputs must come from: profile + names"})
    architecture: str = "mculora"
    dataset: str | None = None
    training: dict = field(default_factory=dict, metadata={"help": "free-form provenance (seed, split, epochs)"})
    # {combination: T}: the Predictor divides that combination's logits by T (mculora.training.calibration); none: 1.
    temperatures: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        body = asdict(self)
        return {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "mculora_version": __version__, **body}

    @classmethod
    def from_json(cls, data: object, source: str = CONFIG_FILE) -> CheckpointConfig:
        def fail(reason: str) -> CheckpointError:
            return CheckpointError(f"{source}: {reason}")

        if not isinstance(data, dict):
            raise fail("expected a JSON object")
        if data.get("format") != CHECKPOINT_FORMAT:
            raise fail(f"not an mculora checkpoint (format is {data.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        version = data.get("format_version")
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise fail(f"format_version {version!r} is not supported by mculora {__version__} (1 to {FORMAT_VERSION})")
        missing = sorted(name for name in ("model", "task", "label_names", "method", "encoders") if name not in data)
        if missing:
            raise fail(f"missing keys {missing}")
        architecture = data.get("architecture", "mculora")
        if architecture not in ARCHITECTURES:
            raise fail(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
        model_cls = ARCHITECTURES[architecture].config_class
        model_data = data["model"]
        if not isinstance(model_data, dict):
            raise fail("'model' must be an object")
        if architecture == "mculora":
            # A config without `combination_stream` describes the plain chain (the format's first version).
            model_data = {"combination_stream": "chain", **model_data}
            # The format's first version also said whether the network had adapters; without them it was a baseline.
            if model_data.pop("adapters", True) is not True:
                raise fail("an MCULoRA network without adapters: a baseline from an older mculora, retrain it")
        known = {f.name for f in fields(model_cls)}
        unknown = sorted(set(model_data) - known)
        if unknown:
            raise fail(f"unknown model settings {unknown}")
        wrong = _wrongly_typed(model_cls, model_data)
        if wrong:
            raise fail("model settings of the wrong type: " + "; ".join(wrong))
        lacking = sorted({"feature_dims", "num_outputs"} - set(model_data))
        if lacking:
            raise fail(f"model settings lack {lacking}")
        try:
            model = model_cls(**model_data)
            model.check_data()
        except (TypeError, ValueError) as error:
            raise fail(f"invalid model settings: {error}") from None
        task, labels = data["task"], data["label_names"]
        if task not in TASKS:
            raise fail(f"task must be one of {TASKS}, got {task!r}")
        if not isinstance(labels, list) or not all(isinstance(name, str) and name for name in labels):
            raise fail("label_names must be a list of non-empty strings")
        if len(labels) != model.num_outputs or (task == "regression" and model.num_outputs != 1):
            raise fail(f"{len(labels)} label names do not fit a {task} head with {model.num_outputs} outputs")
        if not isinstance(data["method"], str) or not isinstance(data.get("dataset", ""), str | None):
            raise fail("'method' must be a string, and 'dataset' a string or null")
        if not isinstance(data.get("training") or {}, dict):
            raise fail("'training' must be an object")
        encoders = data["encoders"]
        if not isinstance(encoders, dict) or not isinstance(encoders.get("profile"), str):
            raise fail("'encoders' must be an object with a 'profile' name")
        temperatures = data.get("temperatures") or {}
        valid = isinstance(temperatures, dict) and all(
            name in COMBINATIONS and isinstance(t, int | float) and 0 < t < math.inf for name, t in temperatures.items()
        )
        if not valid:
            raise fail(f"temperatures must map combination names {list(COMBINATIONS)} to positive numbers")
        return cls(
            model=model,
            task=task,
            label_names=labels,
            method=data["method"],
            encoders=encoders,
            architecture=architecture,
            dataset=data.get("dataset"),
            training=data.get("training") or {},
            temperatures={name: float(t) for name, t in temperatures.items()},
        )


def _fits(value: object, annotation: object) -> bool:
    """Whether a JSON value has the type a config field is annotated with (bool is not a number here)."""
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return type(value) is int
    if annotation is float:
        return type(value) in (int, float) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    if typing.get_origin(annotation) is dict:
        key_type, value_type = typing.get_args(annotation)
        return isinstance(value, dict) and all(_fits(k, key_type) and _fits(v, value_type) for k, v in value.items())
    return True  # no other field types exist in the model configs


def _wrongly_typed(cls, data: dict) -> list[str]:
    """``name: expected T, got V`` for each value in ``data`` that does not fit the dataclass field it sets."""
    hints = typing.get_type_hints(cls)
    return [
        f"{name}: expected {getattr(hints[name], '__name__', hints[name])}, got {value!r:.40}"
        for name, value in data.items()
        if not _fits(value, hints[name])
    ]


def save_checkpoint(directory: str | Path, model: torch.nn.Module, config: CheckpointConfig) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": CHECKPOINT_FORMAT})
    (directory / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n")
    return directory


def read_checkpoint_config(directory: str | Path) -> CheckpointConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"no {CONFIG_FILE} in {Path(directory)} (a checkpoint is a directory with {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    return CheckpointConfig.from_json(data, source=str(path))


def load_checkpoint(
    directory: str | Path, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, CheckpointConfig]:
    """Rebuild the network from ``config.json``, check and load ``model.safetensors``; returns it in eval mode."""
    config = read_checkpoint_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"no {WEIGHTS_FILE} in {Path(directory)}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({error})") from None
    model = ARCHITECTURES[config.architecture](config.model)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(name for name in set(expected) & set(state) if expected[name].shape != state[name].shape)
    if missing or unexpected or mismatched:
        details = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if names:
                details.append(f"{len(names)} {label} (e.g. {', '.join(names[:3])})")
        raise CheckpointError(f"{weights} does not match its {CONFIG_FILE}: " + "; ".join(details))
    broken = [name for name, tensor in state.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        raise CheckpointError(f"{weights}: {len(broken)} tensors hold NaN or infinite values (e.g. {broken[0]})")
    model.load_state_dict(state)
    return model.to(device).eval(), config


def sibling_checkpoints(directory: str | Path) -> list[Path]:
    """The checkpoints beside ``directory`` made for comparison with it: other methods over the same encoders and
    labels (e.g. ``checkpoints/mplmm`` beside ``checkpoints/default``), which the demo serves next to it."""
    directory = Path(directory).resolve()
    primary = read_checkpoint_config(directory)
    found = []
    for candidate in sorted(directory.parent.iterdir()):
        if candidate == directory or not (candidate / CONFIG_FILE).is_file():
            continue
        try:
            config = read_checkpoint_config(candidate)
        except CheckpointError:
            continue  # not a checkpoint this version can read: it cannot be served either
        if (
            config.method != primary.method
            and config.task == primary.task
            and config.encoders == primary.encoders
            and config.label_names == primary.label_names
        ):
            found.append(candidate)
    return found


def strip_front_matter(text: str) -> str:
    """A model card (a checkpoint's README.md) without its YAML front matter: the part people read."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + len("\n---\n") :]
    return text
