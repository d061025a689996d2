import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mculora.checkpoint import CheckpointConfig, CheckpointError, load_checkpoint, save_checkpoint
from mculora.modalities import MODALITIES, index_to_mask
from mculora.model import MCULoRA, MCULoRAConfig

DIMS = {"audio": 6, "text": 8, "vision": 7}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = MCULoRA(MCULoRAConfig(feature_dims=DIMS, num_outputs=3, hidden=8, depth=1)).eval()
    for name, p in model.named_parameters():
        if ".lora_B." in name:
            torch.nn.init.normal_(p)
    config = CheckpointConfig(
        model=model.config,
        task="classification",
        label_names=["happy", "sad", "angry"],
        method="mcu-lora",
        encoders={"profile": "features", "features": {"audio": "a", "text": "t", "vision": "v"}},
    )
    return model, save_checkpoint(tmp_path / "ckpt", model, config)


def test_round_trip_gives_identical_predictions(saved):
    model, path = saved
    loaded, config = load_checkpoint(path)
    assert config.label_names == ["happy", "sad", "angry"] and config.model == model.config
    features = {m: torch.randn(2, 3, DIMS[m.value]) for m in MODALITIES}
    mask = torch.ones(2, 3, dtype=torch.bool)
    modalities = index_to_mask(torch.tensor([0, 5]))
    assert torch.equal(model(features, mask, modalities).logits, loaded(features, mask, modalities).logits)
    on_disk = json.loads((path / "config.json").read_text())
    assert on_disk["format"] == "mculora-checkpoint" and on_disk["format_version"] == 1


def _edit_config(path, **changes):
    data = json.loads((path / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    (path / "config.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something-else"}, "not an mculora checkpoint"),
        ({"format_version": 99}, "not supported"),
        ({"format_version": 0}, "not supported"),
        ({"format_version": -1}, "not supported"),
        ({"format_version": True}, "not supported"),
        ({"format_version": "1"}, "not supported"),
        ({"method": ["mcu-lora"]}, "'method' must be a string"),
        ({"dataset": 7}, "'dataset' a string or null"),
        ({"training": "seed 0"}, "'training' must be an object"),
        ({"temperatures": {"atv": "hot"}}, "temperatures must map"),
        ({"task": "ranking"}, "task must be one of"),
        ({"label_names": ["happy", "sad"]}, "do not fit"),
        ({"encoders": None}, "missing keys"),
        ({"architecture": "transformer-xl"}, "unknown architecture"),
    ],
)
def test_invalid_configs_fail_with_a_clear_message(saved, changes, message):
    _, path = saved
    _edit_config(path, **changes)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("hidden", "8"),
        ("hidden", 8.0),
        ("depth", True),
        ("dropout", "0.5"),
        ("combination_stream", 3),
        ("feature_dims", [6, 8, 7]),
        ("feature_dims", {"audio": 6, "text": "8", "vision": 7}),
        ("num_outputs", None),
    ],
)
def test_model_settings_of_the_wrong_type(saved, setting, value):
    _, path = saved
    data = json.loads((path / "config.json").read_text())
    data["model"][setting] = value
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=f"wrong type: {setting}: expected"):
        load_checkpoint(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_weights_with_nan_or_inf_are_refused(saved, value):
    _, path = saved
    state = load_file(str(path / "model.safetensors"))
    name = sorted(state)[0]
    state[name].view(-1)[0] = value
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"1 tensors hold NaN or infinite values \\(e.g. {name}\\)"):
        load_checkpoint(path)


def test_model_settings_that_do_not_match_the_weights(saved):
    _, path = saved
    data = json.loads((path / "config.json").read_text())
    data["model"]["feature_dims"]["text"] = 9
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(path)
    data["model"]["surprise"] = 1
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="unknown model settings"):
        load_checkpoint(path)


def test_damaged_or_missing_files(saved, tmp_path):
    _, path = saved
    state = load_file(str(path / "model.safetensors"))
    state["surplus.weight"] = torch.zeros(2)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="1 unexpected \\(e.g. surplus.weight\\)"):
        load_checkpoint(path)
    state.pop("surplus.weight")
    state.pop(next(iter(state)))
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="1 missing"):
        load_checkpoint(path)
    (path / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(path)
    (path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path / "nowhere")
