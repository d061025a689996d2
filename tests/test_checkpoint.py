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
