"""The documented commands as a user types them: `python app.py` with its flags and its default bind, `python -m
mculora.hosting.hub push/pull` against the Hub stand-in, `python -m mculora.hosting.space --out`; and the page's Reset
conversation button and ablation JSON export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_standin import HubStandIn
from served import api_client, free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses with a listening TCP socket on ``port`` (from /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            addresses.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return addresses


def test_app_flags_and_its_default_bind(tmp_path):
    """``--port`` and ``--compare-with`` are used; without ``--host`` the page listens on 127.0.0.1 only."""
    port = free_port()
    log = tmp_path / "app.log"
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_SERVER_NAME", "MCULORA_HOST")}
    env["GRADIO_TEMP_DIR"] = str(tmp_path / "gradio")
    command = [sys.executable, "app.py", "--port", str(port), "--compare-with", "checkpoints/mplmm"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while "Running on" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        text = log.read_text()
        assert f"Running on local URL:  http://127.0.0.1:{port}" in text, text[-3000:]
        assert "methods on the page: mcu-lora, mplmm" in text
        assert listening_addresses(port) == {"127.0.0.1"}
        client = api_client(f"http://127.0.0.1:{port}/")
        result = client.predict(None, None, "I am so sad today.", True, True, True, None, "mplmm", api_name="/predict")
        client.close()
        assert result["method"] == "mplmm" and result["used"] == ["text"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_hub_push_and_pull_commands(tmp_path, demo_checkpoint):
    with HubStandIn() as server:
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "cache")}
        env["HF_HUB_DISABLE_XET"] = "1"  # the stand-in speaks the Hub's LFS protocol

        def hub(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "mculora.hosting.hub", *args], env=env, capture_output=True, text=True
            )

        pushed = hub("push", str(demo_checkpoint), "someone/demo", "--license", "mit")
        assert pushed.returncode == 0, pushed.stderr[-2000:]
        assert "someone/demo" in pushed.stdout
        pulled = hub("pull", "someone/demo")
        assert pulled.returncode == 0, pulled.stderr[-2000:]
        directory = Path(pulled.stdout.strip().splitlines()[-1])
        assert (directory / "config.json").read_bytes() == (demo_checkpoint / "config.json").read_bytes()
        missing = hub("pull", "someone/absent")
        assert missing.returncode == 1 and "someone/absent was not found" in missing.stderr
        assert "Traceback" not in missing.stderr
        assert not server.unknown, server.unknown


def test_space_out_command_builds_a_valid_folder(tmp_path):
    out = tmp_path / "space"
    done = subprocess.run(
        [sys.executable, "-m", "mculora.hosting.space", "--out", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hf upload" in done.stdout
    for name in ("app.py", "requirements.txt", "packages.txt", "README.md"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "default" / "model.safetensors").is_file()
    checked = subprocess.run(
        [sys.executable, "-m", "mculora.hosting.space", "--check", str(out)], cwd=ROOT, capture_output=True
    )
    assert checked.returncode == 0


def test_reset_conversation_and_the_ablation_json_export(predictor):
    from mculora.serving import plots
    from mculora.serving.demo import Conversation, DemoCallbacks

    callbacks = DemoCallbacks(predictor)
    conversation = Conversation()
    for sentence in ("Hello there.", "I am furious!", "Now I feel better."):
        timeline, conversation = callbacks.predict_view(
            None, None, sentence, None, True, True, True, True, conversation
        )[6:8]
    assert len(conversation.turns) == 3 and len(conversation.features) == 3 and timeline is not None
    fresh, cleared = callbacks.reset_conversation()
    assert isinstance(fresh, Conversation) and fresh.turns == [] and fresh.features == [] and cleared is None

    heatmap, table, csv_path, json_path = callbacks.ablate_view(
        None, None, "What a lovely day!", None, True, True, True
    )
    rows = predictor.predict_combinations(text="What a lovely day!")
    assert json.loads(Path(json_path).read_text()) == json.loads(
        json.dumps(plots.ablation_record(rows, predictor.labels))
    )
    assert Path(csv_path).read_text() == plots.ablation_csv(rows, predictor.labels)
