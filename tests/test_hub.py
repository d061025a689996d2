"""Checkpoints on the Hub: publish, download by name and revision, use from the cache, and fail at once offline.

Everything goes through `huggingface_hub` against `hub_standin.HubStandIn`, a local server with the Hub's endpoints;
nothing here reaches the network."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hub_standin import HubStandIn
from huggingface_hub import constants

from mculora import hub_download
from mculora.checkpoint import CheckpointError, read_checkpoint_config
from mculora.hosting import hub
from mculora.serving.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
REPO = "someone/mculora-demo"
TEXT = "I can't believe it, this is wonderful news!"


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh Hugging Face cache, so that nothing cached by an earlier test or user is found."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    # The library sends large files over Xet when hf_xet is installed; the stand-in speaks the Hub's LFS protocol.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    return tmp_path / "hub-cache"


@pytest.fixture
def standin(monkeypatch, cache):
    with HubStandIn() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server
        assert not server.unknown, f"requests the stand-in does not serve: {server.unknown}"


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


@pytest.mark.slow
def test_publish_then_load_by_name_and_revision(standin, demo_checkpoint, monkeypatch):
    url = hub.push(demo_checkpoint, REPO, license="cc-by-nc-sa-4.0", token="hf_test")
    revision = url.rsplit("/", 1)[-1]
    assert standin.repos[REPO].refs["main"] == revision

    # The weights took the LFS route, as the real Hub asks for safetensors.
    assert any(r.startswith("PUT /lfs-upload/") for r in standin.requests)
    files = standin.repos[REPO].commits[revision]
    assert files["model.safetensors"] == (demo_checkpoint / "model.safetensors").read_bytes()

    # The card carries Hub metadata built from metrics.json, and keeps the checkpoint's own card below it.
    card = files["README.md"].decode()
    meta = front_matter(card)
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["library_name"] == "mculora"
    assert "missing-modalities" in meta["tags"] and meta["datasets"] == ["ekman7-paired"]
    metrics = json.loads((demo_checkpoint / "metrics.json").read_text())
    paired = next(r for r in meta["model-index"][0]["results"] if r["dataset"]["name"] == "paired_test")
    atv = next(m for m in paired["metrics"] if m["type"] == "accuracy" and m["config"] == "atv")
    assert atv["value"] == pytest.approx(metrics["paired_test"]["atv"]["accuracy"], abs=1e-4)
    assert len(paired["metrics"]) == 28  # 7 combinations x (accuracy, UA, macro-F1, weighted F1)
    assert (demo_checkpoint / "README.md").read_text().splitlines()[0] in card

    local = Predictor.from_pretrained(demo_checkpoint, device="cpu").predict(text=TEXT)
    pinned = Predictor.from_pretrained(f"{REPO}@{revision}", device="cpu").predict(text=TEXT)
    assert pinned.probabilities == local.probabilities
    latest = Predictor.from_pretrained(REPO, device="cpu").predict(text=TEXT)
    assert latest.probabilities == local.probabilities

    # Once downloaded, a pinned revision loads from the cache with the Hub gone.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    requests = len(standin.requests)
    offline = Predictor.from_pretrained(f"{REPO}@{revision}", device="cpu").predict(text=TEXT)
    assert offline.probabilities == local.probabilities and len(standin.requests) == requests


def test_a_second_push_is_a_new_revision_and_old_ones_stay_loadable(standin, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    first = hub.push(checkpoint, REPO, license="mit", token="hf_test").rsplit("/", 1)[-1]
    (checkpoint / "metrics.json").write_text(json.dumps({"test": {"atv": {"accuracy": 0.5, "macro_f1": 0.4}}}))
    second = hub.push(checkpoint, REPO, license="mit", token="hf_test").rsplit("/", 1)[-1]
    assert first != second
    old = hub_download.download(f"{REPO}@{first}")
    new = hub_download.download(REPO)
    assert not (old / "metrics.json").exists() and (new / "metrics.json").exists()
    assert "model-index" not in front_matter((old / "README.md").read_text())
    assert front_matter((new / "README.md").read_text())["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5


def test_unknown_names_and_revisions_are_named_in_the_error(standin, tmp_path):
    hub.push(tiny_checkpoint(tmp_path / "ckpt"), REPO, license="mit", token="hf_test")
    with pytest.raises(hub_download.HubError, match="someone/nothing-here was not found"):
        hub_download.download("someone/nothing-here")
    with pytest.raises(hub_download.HubError, match="has no revision 'v9'"):
        hub_download.download(f"{REPO}@v9")


def test_a_broken_checkpoint_is_never_published(standin, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    (checkpoint / "model.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        hub.push(checkpoint, REPO, license="mit", token="hf_test")
    assert standin.requests == []


def test_offline_the_answer_comes_at_once_and_says_what_to_do(no_network, cache):
    with pytest.raises(hub_download.HubError, match="cannot be reached from this machine and no copy is cached"):
        Predictor.from_pretrained("someone/mculora-demo@main", device="cpu")
    assert len(no_network) == 1  # one connection attempt, no retries with back-off
    with pytest.raises(hub_download.HubError, match="cannot publish"):
        hub.push(ROOT / "checkpoints" / "default", REPO, license="mit", token="hf_test")


def test_offline_mode_uses_the_cache_only(monkeypatch, cache, demo_checkpoint, request):
    """HF_HUB_OFFLINE: nothing cached is an error that says so; a cached copy loads without a connection."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(hub_download.HubError, match="HF_HUB_OFFLINE is set"):
        hub_download.download(REPO)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubStandIn() as server:  # cache a published copy while the Hub can be reached
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        hub.push(demo_checkpoint, REPO, license="mit")
        fetched = hub_download.download(REPO)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    attempts = request.getfixturevalue("no_network")  # from here on, every connection is refused
    assert hub_download.download(REPO) == fetched and attempts == []
    assert Predictor.from_pretrained(REPO, device="cpu").predict(text=TEXT).label


def test_local_directories_win_and_bad_names_are_explained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "someone" / "model").mkdir(parents=True)
    assert hub_download.resolve("someone/model") == Path("someone/model")  # an existing directory is never looked up
    assert hub_download.resolve(Path("other/model")) == Path("other/model")
    with pytest.raises(hub_download.HubError, match="neither a checkpoint directory nor a Hub name"):
        hub_download.parse_reference("not a name")
    assert hub_download.parse_reference("owner/name@v1.0") == ("owner/name", "v1.0")


def test_app_refuses_an_unreachable_hub_checkpoint_with_a_message(tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--checkpoint", "someone/mculora-demo@main"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "error: cannot load checkpoint 'someone/mculora-demo@main'" in result.stderr
    assert "Traceback" not in result.stderr


def tiny_checkpoint(directory: Path) -> Path:
    import torch

    from mculora.checkpoint import CheckpointConfig, save_checkpoint
    from mculora.model import MCULoRA, MCULoRAConfig

    torch.manual_seed(0)
    model = MCULoRA(MCULoRAConfig(feature_dims={"audio": 6, "text": 8, "vision": 7}, num_outputs=3, hidden=8, depth=1))
    config = CheckpointConfig(
        model=model.config,
        task="classification",
        label_names=["happy", "sad", "angry"],
        method="mcu-lora",
        dataset="toy",
        encoders={"profile": "features"},
    )
    save_checkpoint(directory, model, config)
    assert read_checkpoint_config(directory).dataset == "toy"
    return directory
