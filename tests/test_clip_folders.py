"""Folders of clips in one go (`mculora clip`, mculora.serving.clip_command) and the `mculora` command: every clip's
exports and one summary, a broken clip's reason in the summary while the run goes on, clips already done skipped,
stable shards, two methods side by side, and the installed command's subcommands."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mculora.preprocess.audio import prepare_audio
from mculora.serving.clip_command import ClipJob, find_clips, shard
from mculora.serving.clip_writer import compose_clip

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
FORMATS = {  # relative path -> (video codec or None, audio codec, sample rate)
    "talk.mp4": ("libx264", "aac", 16_000),
    "talk.webm": ("libvpx", "libopus", 48_000),
    "corpus/talk.flv": ("flv", "mp3", 44_100),
    "corpus/voice.m4a": (None, "aac", 16_000),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Four readable clips (one FLV, one WebM, one in a subfolder), a broken one, and a file that is not media."""
    root = tmp_path_factory.mktemp("clips")
    face = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    speech = prepare_audio(str(EXAMPLES / "happy_speech.wav")).samples[: 3 * 16_000]
    for relative, (video, audio, rate) in FORMATS.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        voice = np.interp(np.arange(3 * rate) * 16_000 / rate, np.arange(speech.size), speech).astype(np.float32)
        compose_clip(
            root / relative,
            [(face, voice, 3.0)],
            width=160 if video else None,
            height=120,
            sample_rate=rate,
            video_codec=video,
            audio_codec=audio,
        )
    (root / "corpus" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (root / "notes.txt").write_text("not a clip")
    return root


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mculora.cli", *args], capture_output=True, text=True, timeout=600, cwd=Path.cwd()
    )


def read_summary(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_folders_and_globs_are_expanded_once_each(folder):
    found = find_clips([str(folder), str(folder / "*.mp4")])
    assert sorted(job.relative.as_posix() for job in found) == sorted([*FORMATS, "corpus/broken.mp4"])
    assert find_clips([str(folder / "notes.txt")])[0].relative == Path(
        "notes.txt"
    )  # named directly: the reader decides


def test_shards_split_the_clips_stably_and_completely():
    jobs = [ClipJob(Path(f"/data/c{k}.mp4"), Path(f"s{k % 7}/c{k}.mp4")) for k in range(200)]
    shares = [shard(jobs, k, 4) for k in (1, 2, 3, 4)]
    assert sorted(j.relative for s in shares for j in s) == sorted(j.relative for j in jobs)  # each clip once
    assert all(30 <= len(s) <= 70 for s in shares)
    moved = [ClipJob(Path("/elsewhere") / j.relative, j.relative) for j in jobs]  # another machine's mount point
    assert [j.relative for j in shard(moved, 2, 4)] == [j.relative for j in shares[1]]


@pytest.mark.slow
def test_a_folder_gives_every_export_and_one_summary_and_a_second_run_skips(folder, tmp_path, demo_checkpoint):
    out = tmp_path / "out"
    mplmm = demo_checkpoint.parent / "mplmm"
    done = run_command(
        "clip", str(folder), "--out", str(out), "--annotate", "--checkpoint", str(demo_checkpoint),
        "--compare-with", str(mplmm),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for relative in FORMATS:
        for suffix in (".csv", ".json", ".annotated.mp4"):  # talk.mp4 and talk.webm each keep their own
            assert (out / f"{relative}{suffix}").is_file(), f"{relative}{suffix}"
    rows = read_summary(out / "summary.csv")
    broken = [row for row in rows if row["clip"] == "corpus/broken.mp4"]
    assert len(broken) == 1 and broken[0]["status"].startswith("error: could not read clip broken.mp4")
    scored = [row for row in rows if row["status"] == "scored"]
    assert {row["clip"] for row in scored} == set(FORMATS)
    assert {row["method"] for row in scored} == {"mcu-lora", "mplmm"}  # two methods side by side
    for row in scored:
        probabilities = [float(row[label]) for label in ("anger", "happiness", "neutral", "sadness")]
        assert row["label"] and min(probabilities) >= 0.0 and sum(probabilities) <= 1.0 + 1e-5
    voice = [row for row in scored if row["clip"] == "corpus/voice.m4a"]
    assert {row["combination"] for row in voice} == {"all", "a"} and voice[0]["windows_with_face"] == "0"
    talk = {row["combination"] for row in scored if row["clip"] == "talk.mp4" and row["method"] == "mcu-lora"}
    assert {"all", "av", "a", "v"} <= talk
    assert "4 scored, 0 already done, 1 failed" in done.stdout

    written = {path: path.stat().st_mtime_ns for path in out.rglob("*.json")}
    again = run_command("clip", str(folder), "--out", str(out), "--annotate", "--checkpoint", str(demo_checkpoint))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 scored, 4 already done, 1 failed" in again.stdout
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*.json")} == written
    reread = [row for row in read_summary(out / "summary.csv") if row["status"] == "already done"]
    assert {(r["clip"], r["method"], r["combination"], r["label"]) for r in reread} == {
        (r["clip"], r["method"], r["combination"], r["label"]) for r in scored
    }

    sharded = run_command(
        "clip", str(folder), "--out", str(out), "--shard", "2/2", "--overwrite", "--checkpoint", str(demo_checkpoint)
    )
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    expected = {job.relative.as_posix() for job in shard(find_clips([str(folder)]), 2, 2)}
    assert {row["clip"] for row in read_summary(out / "summary-2-of-2.csv")} == expected


def test_the_mculora_command_and_its_subcommands_answer_help():
    script = Path(sys.executable).parent / "mculora"
    assert script.is_file(), "the console script is installed with the package ([project.scripts])"
    listing = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    for name in ("serve", "clip", "hub", "space", "train", "compare"):
        assert f"  {name} " in listing.stdout
        helped = subprocess.run([str(script), name, "--help"], capture_output=True, text=True, timeout=120)
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: mculora {name}"), helped.stderr[-2000:]
    unknown = subprocess.run([str(script), "nope"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr


def test_no_clip_found_is_a_clear_error(tmp_path):
    done = run_command("clip", str(tmp_path))
    assert done.returncode != 0 and "no clips found" in done.stderr


def test_serve_without_the_demo_extra_says_how_to_get_it():
    script = "import sys; sys.modules['gradio'] = None\nfrom mculora.cli import main\nsys.exit(main(['serve']))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and 'pip install "mculora[demo]"' in done.stderr


@pytest.mark.slow
def test_pip_install_gives_the_library_and_the_command_outside_the_checkout(folder, tmp_path, demo_checkpoint):
    """The wheel built from pyproject.toml, installed into a fresh environment whose dependencies are the tested
    stack's (this environment's site-packages on its path, so pip finds every requirement installed and fetches
    none): `mculora clip` runs from another folder on the installed package, not on this checkout."""
    import site
    import venv

    wheels, env = tmp_path / "wheels", tmp_path / "env"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(Path(__file__).parents[1])],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    own = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True
    )
    (Path(own.stdout.strip()) / "tested_stack.pth").write_text(site.getsitepackages()[0] + "\n")
    wheel = next(wheels.glob("mculora-*.whl"))
    installed = subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    where = subprocess.run(
        [python, "-c", "import mculora; print(mculora.__file__)"], capture_output=True, text=True, cwd=tmp_path
    )
    assert where.stdout.startswith(str(env)), where.stdout
    done = subprocess.run(
        [env / "bin" / "mculora", "clip", str(folder / "talk.mp4"), "--out", "out", "--checkpoint", demo_checkpoint],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "talk.mp4.json").is_file() and (tmp_path / "out" / "summary.csv").is_file()
