"""Hosting: the Space folder `make space` assembles passes its checks, a broken one fails them with the reason, the
folder serves the demo on its own, and the ZeroGPU settings and the startup report are what a Space needs."""

import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import gradio as gr
import pytest
import torch
from served import free_port

from mculora.hosting import space
from mculora.serving import server

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return space.assemble(tmp_path_factory.mktemp("space") / "space")


@pytest.fixture
def broken(folder, tmp_path) -> Path:
    """A copy of the good folder for a test to break."""
    import shutil

    copy = tmp_path / "space"
    shutil.copytree(folder, copy)
    return copy


def test_the_assembled_folder_passes_its_checks(folder):
    space.validate(folder)  # raises SpaceError with every problem
    meta = space.front_matter(folder / "README.md")
    pinned, _ = space.pins(folder / "requirements.txt")
    assert meta["python_version"] == "3.12" and meta["sdk_version"] == pinned["gradio"]
    assert pinned["torch"] in space.ZERO_GPU_TORCH
    assert space.lfs_tracked("checkpoints/default/model.safetensors", space.lfs_patterns(folder))
    assert (folder / "mculora" / "serving" / "predictor.py").is_file() and (folder / "packages.txt").is_file()
    assert not (folder / "checkpoints" / "default" / "ravdess_au").exists()
    assert not list(folder.rglob("__pycache__"))


def test_the_repository_and_the_space_track_the_same_binaries():
    patterns = space.lfs_patterns(ROOT)
    assert set(patterns) == set(space.LFS_PATTERNS)


def edit_front_matter(folder: Path, old: str, new: str) -> None:
    readme = folder / "README.md"
    text = readme.read_text()
    assert old in text
    readme.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("sdk_version: ", "sdk_version: 5.0.0\nx_old_sdk: ", "sdk_version 5.0.0 differs from the gradio pin"),
        ('python_version: "3.12"', 'python_version: "3.11"', "python_version '3.11' is not one ZeroGPU runs"),
        ('python_version: "3.12"', "python_version: 3.10", "python_version 3.1 is not one ZeroGPU runs"),
        ("sdk: gradio", "sdk: streamlit", "sdk is 'streamlit'"),
        ("app_file: app.py", "app_file: main.py", "app_file 'main.py' is not in the folder"),
        ("colorFrom: indigo", "colorFrom: teal", "colorFrom 'teal' is not one of"),
        ("title: mculora\n", "", "'title' is missing"),
        ("emoji: 🎭", "emoji: [unclosed", "the front matter is not valid YAML"),
    ],
)
def test_a_broken_front_matter_fails_with_the_reason(broken, old, new, message):
    edit_front_matter(broken, old, new)
    with pytest.raises(space.SpaceError, match=re.escape(message)):
        space.validate(broken)


def test_pins_large_and_binary_files_are_checked(broken):
    requirements = broken / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("torch==2.11.0", "torch==2.14.1") + "einops\n")
    (broken / "weights.bin").write_bytes(b"\0" * 11_000_000)
    (broken / "assets" / "examples" / "clip.ogg").write_bytes(b"OggS\0\0\2")
    (broken / "packages.txt").write_text("libgl1\nlib gl\n")
    with pytest.raises(space.SpaceError) as failure:
        space.validate(broken)
    problems = str(failure.value)
    assert "torch 2.14.1 is not on ZeroGPU's list" in problems
    assert "torchaudio 2.11.0 is not the partner release of torch 2.14.1" in problems
    assert "'einops' is not an exact pin" in problems
    assert "weights.bin: 11.0 MB, over the Hub's 10 MB outside LFS" in problems
    assert "clip.ogg: a binary file outside LFS" in problems
    assert "'lib gl' is not a Debian package name" in problems


def test_pointer_files_instead_of_weights_are_caught(broken):
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 22622508\n"
    (broken / "checkpoints" / "default" / "model.safetensors").write_text(pointer)
    with pytest.raises(space.SpaceError, match="the app's checkpoint does not load"):
        space.validate(broken)


def test_the_command_line_reports_a_broken_folder(broken):
    edit_front_matter(broken, 'python_version: "3.12"', 'python_version: "3.9"')
    result = subprocess.run(
        [sys.executable, "-m", "mculora.hosting.space", "--check", str(broken)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "is not a valid Space" in result.stderr and "python_version '3.9'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_folder_serves_the_demo_on_its_own(folder, tmp_path):
    """Started as a Space starts it (python app.py in the folder): it logs the startup report and answers /predict."""
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONPATH": ""}
    env["GRADIO_TEMP_DIR"] = str(tmp_path)
    log = tmp_path / "space.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while "Running on" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        text = log.read_text()
        assert "Running on" in text, text[-3000:]
        assert f"mculora: device cpu; torch {torch.__version__}" in text
        assert "torch.cuda.is_available()=False" in text and "ZeroGPU no" in text
        assert f"checkpoint {folder / 'checkpoints' / 'default'}" in text and "encoder profile 'offline'" in text
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        result = client.predict(None, None, "I am so sad and lonely today.", True, True, True, api_name="/predict")
        client.close()
        assert result["used"] == ["text"] and result["label"] == "sadness"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_zero_gpu_wraps_every_model_event_and_hides_the_live_stream(monkeypatch, demo_checkpoint):
    import app
    from mculora.serving import page
    from mculora.serving.predictor import Predictor

    requested = []

    def gpu(duration):
        requested.append(duration)
        return lambda fn: fn

    monkeypatch.setattr(page, "spaces", types.SimpleNamespace(GPU=gpu))
    predictor = Predictor.from_pretrained(demo_checkpoint, device="cpu")
    demo = app.build_demo(predictor, demo_checkpoint)
    assert requested == [] and live_tab(demo).visible  # off ZeroGPU the decorator is not even asked for

    monkeypatch.setenv(server.ZERO_GPU_ENV, "true")
    demo = app.build_demo(predictor, demo_checkpoint)
    # The clip events ask for longer: a 120 s clip takes about 15 s of CPU for the face mesh alone.
    assert requested == [server.GPU_SECONDS, server.CLIP_GPU_SECONDS] and not live_tab(demo).visible
    assert 0 < server.GPU_SECONDS < server.CLIP_GPU_SECONDS <= 60


def live_tab(demo: gr.Blocks) -> gr.Tab:
    return next(b for b in demo.blocks.values() if isinstance(b, gr.Tab) and b.label == "Live webcam")


def test_the_startup_report_explains_a_gpu_the_torch_build_cannot_use(monkeypatch, demo_checkpoint):
    from mculora.checkpoint import read_checkpoint_config

    config = read_checkpoint_config(demo_checkpoint)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(server, "nvidia_driver", lambda: None)
    lines = server.startup_report(torch.device("cpu"), demo_checkpoint, config)
    assert len(lines) == 2 and "NVIDIA driver none" in lines[0]

    driver = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15"
    monkeypatch.setattr(server, "nvidia_driver", lambda: driver)
    warning = server.startup_report(torch.device("cpu"), demo_checkpoint, config)[-1]
    assert warning.startswith("mculora: WARNING:") and "550.54.15" in warning and ">= 580 for CUDA 13" in warning


def test_the_printed_commands_publish_the_folder(folder, tmp_path):
    """The `hf` commands `make space` prints, run as printed against a local stand-in for the Hub."""
    from hub_standin import HubStandIn

    hf = Path(sys.executable).parent / "hf"
    commands = [line.strip() for line in space.PUBLISH.format(folder=folder).splitlines()]
    commands = [c.replace("OWNER/NAME", "someone/mculora") for c in commands if c.startswith(("hf repos", "hf upload"))]
    assert len(commands) == 2
    with HubStandIn() as standin:
        env = {**os.environ, "HF_ENDPOINT": standin.url, "HF_TOKEN": "hf_test", "HF_HOME": str(tmp_path)}
        env["HF_HUB_DISABLE_XET"] = "1"  # the stand-in speaks the LFS protocol, not Xet
        for command in commands:
            result = subprocess.run([str(hf), *command.split()[1:]], capture_output=True, text=True, env=env)
            assert result.returncode == 0, result.stderr[-2000:]
        assert not standin.unknown, standin.unknown
        repository = standin.repos["spaces/someone/mculora"]
        published = repository.commits[repository.refs["main"]]
    local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert published == local
    assert any(r.startswith("PUT /lfs-upload/") for r in standin.requests)  # the weights went as an LFS object
