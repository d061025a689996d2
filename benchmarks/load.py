"""Load and soak test: concurrent gradio_client clients against the real server, under two request profiles.

    python benchmarks/load.py [--profile mix|full|both] [--clients 16] [--requests 32] [--speech-rate 48000]
                               [--json out.json]

Starts ``python app.py`` on a free port of 127.0.0.1 (its own process; the clients are threads of this one, one
gradio_client each, so on one machine they share its cores with the server), warms it up with the same load, then
each of ``--clients`` clients sends ``--requests`` requests. Profiles:

- ``full``: what a demo's real traffic is, every request a face image (512x512 PNG), a 4 s WAV and a sentence
  through ``/predict``, uploaded as a browser uploads them;
- ``mix``: cycling through `mix`: the three modalities together, each alone, the ablation, and bad inputs whose
  answer is a specific left-out reason or error.

A request whose outcome differs from the expected one is a failure. Reports, per profile, failures, p50/p95 latency,
throughput, and the server's resident memory (VmRSS, Linux) after the warm-up and at the end. Failures include the
warm-up's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the served-app helpers the tests use
from served import api_client, free_port  # noqa: E402

EXAMPLES = ROOT / "assets" / "examples"
FACE, SPEECH = EXAMPLES / "astronaut.jpg", EXAMPLES / "happy_speech.wav"
TEXT = "We won! I can't believe it, this is the best day ever!"
FULL_IMAGE_SIDE, FULL_SPEECH_SECONDS = 512, 4.0


@dataclass(frozen=True)
class Request:
    name: str
    endpoint: str
    args: tuple
    expect: str  # "used:<modalities>", "missing:<modality>:<reason text>" or "error:<message text>"


def mix(folder: Path) -> list[Request]:
    """The requests each client cycles through; the bad files are written into ``folder``."""
    (folder / "broken.wav").write_bytes(b"RIFF....not really audio")
    (folder / "note.png").write_bytes(b"this is not a picture\n" * 20)
    face, speech = handle_file(str(FACE)), handle_file(str(SPEECH))
    return [
        Request("all three", "/predict", (face, speech, TEXT, True, True, True, None), "used:audio,text,vision"),
        Request("face", "/predict", (face, None, None, True, True, True, None), "used:vision"),
        Request("speech", "/predict", (None, speech, None, True, True, True, None), "used:audio"),
        Request("text", "/predict", (None, None, TEXT, True, True, True, None), "used:text"),
        Request("ablation", "/ablate", (face, speech, TEXT, True, True, True, None), "rows:7"),
        Request(
            "broken audio",
            "/predict",
            (None, handle_file(str(folder / "broken.wav")), TEXT, True, True, True, None),
            "missing:audio:could not read audio file",
        ),
        Request(
            "text file as face",
            "/predict",
            (handle_file(str(folder / "note.png")), None, TEXT, True, True, True, None),
            "missing:vision:could not read image",
        ),
        Request("nothing usable", "/predict", (None, None, "   ", True, True, True, None), "error:nothing usable"),
    ]


def full(folder: Path, speech_rate: int | None = None) -> list[Request]:
    """The full request: the example face as a 512x512 PNG, the first 4 s of the example speech as a WAV (at its own
    16 kHz, or resampled to ``speech_rate``: a browser's microphone records at 48 kHz), a sentence."""
    import soundfile
    import torch
    import torchaudio.functional as AF
    from PIL import Image

    face, speech = folder / "face.png", folder / "speech.wav"
    Image.open(FACE).convert("RGB").resize((FULL_IMAGE_SIDE, FULL_IMAGE_SIDE)).save(face)
    frames = int(FULL_SPEECH_SECONDS * soundfile.info(SPEECH).samplerate)
    samples, rate = soundfile.read(SPEECH, frames=frames, dtype="float32")
    if speech_rate and speech_rate != rate:
        samples, rate = AF.resample(torch.from_numpy(samples), rate, speech_rate).numpy(), speech_rate
    soundfile.write(speech, samples, rate, subtype="PCM_16")
    args = (handle_file(str(face)), handle_file(str(speech)), TEXT, True, True, True, None)
    return [Request("full request", "/predict", args, "used:audio,text,vision")]


PROFILES = {"mix": mix, "full": full}


def outcome_matches(expect: str, outcome: dict | str) -> bool:
    kind, _, detail = expect.partition(":")
    if kind == "error":
        return isinstance(outcome, str) and detail in outcome
    if not isinstance(outcome, dict):
        return False
    if kind == "rows":
        return len(outcome["rows"]) == int(detail)
    if kind == "used":
        return outcome["used"] == detail.split(",")
    modality, _, reason = detail.partition(":")
    return reason in outcome["missing"].get(modality, "")


@dataclass
class LoadReport:
    profile: str
    clients: int
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    throughput_per_s: float
    rss_before_mb: float
    rss_after_mb: float
    rss_growth_percent: float
    failed: list[str] = field(default_factory=list)  # "name: outcome" of each failure (the first 20)
    startup_s: float = 0.0  # process start to page served
    rss_peak_mb: float = 0.0  # the server's peak resident memory (VmHWM)


def server_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (VmRSS) or at its peak (VmHWM), from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def call(client: Client, request: Request) -> dict | str:
    try:
        return client.predict(*request.args, api_name=request.endpoint)
    except Exception as error:  # the server's message, as a user of gradio_client sees it
        return str(error)


def start_server(checkpoint: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "app.py"), "--checkpoint", str(checkpoint), "--host", "127.0.0.1"]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    with log.open("w") as out:
        server = subprocess.Popen([*command, "--port", str(port)], stdout=out, stderr=out, env=env, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(1)
    server.kill()
    raise RuntimeError(f"the server did not start; its log:\n{log.read_text()[-3000:]}")


def run_load(
    checkpoint: Path, clients: int, requests: int, profiles: Sequence[str] = ("mix",), speech_rate: int | None = None
) -> list[LoadReport]:
    """Each profile in turn against one server: ``clients`` clients, ``requests`` requests each; ``speech_rate``:
    the full profile's WAV rate (default: the example's 16 kHz)."""
    made = {**PROFILES, "full": functools.partial(full, speech_rate=speech_rate)}
    with tempfile.TemporaryDirectory(prefix="mculora-load-") as folder:
        folder = Path(folder)
        port = free_port()
        start = time.perf_counter()
        server = start_server(checkpoint, port, folder / "server.log")
        startup_s = time.perf_counter() - start
        try:
            reports = []
            for profile in profiles:
                report = _measure(
                    f"http://127.0.0.1:{port}/", server.pid, made[profile](folder), clients, requests, profile
                )
                report.startup_s, report.rss_peak_mb = startup_s, server_rss_mb(server.pid, "VmHWM")
                reports.append(report)
            return reports
        finally:
            server.terminate()
            server.wait(timeout=60)


def _measure(url: str, pid: int, requests_mix: list[Request], clients: int, each: int, profile: str) -> LoadReport:
    # The warm-up is the same load, shorter: first calls allocate caches, and each server thread that first runs the
    # model gets its own allocator arena. The soak then measures what comes after.
    _, warm_up_failed, _ = _drive(url, requests_mix, clients, max(clients, len(requests_mix)) * len(requests_mix))
    rss_before = server_rss_mb(pid)
    latencies, failed, wall = _drive(url, requests_mix, clients, clients * each)
    failed = warm_up_failed + failed
    rss_after = server_rss_mb(pid)
    quantiles = statistics.quantiles(latencies, n=20)
    return LoadReport(
        profile=profile,
        clients=clients,
        requests=len(latencies),
        failures=len(failed),
        p50_ms=1000 * statistics.median(latencies),
        p95_ms=1000 * quantiles[18],
        throughput_per_s=len(latencies) / wall,
        rss_before_mb=rss_before,
        rss_after_mb=rss_after,
        rss_growth_percent=100 * (rss_after - rss_before) / rss_before,
        failed=failed[:20],
    )


def _drive(url: str, requests_mix: list[Request], clients: int, total: int) -> tuple[list[float], list[str], float]:
    """``total`` requests from ``clients`` threads, cycling through the mix: latencies, failures and wall time."""
    latencies: list[float] = []
    failed: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def client_loop() -> None:
        client = api_client(url)
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            request = requests_mix[index % len(requests_mix)]
            start = time.perf_counter()
            outcome = call(client, request)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if not outcome_matches(request.expect, outcome):
                    failed.append(f"{request.name}: {str(outcome)[:200]}")
        client.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failed, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--profile", choices=[*PROFILES, "both"], default="both")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=32, help="requests per client")
    parser.add_argument("--speech-rate", type=int, help="the full profile's WAV rate (default: 16000, the example's)")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    profiles = list(PROFILES) if args.profile == "both" else [args.profile]
    reports = run_load(args.checkpoint, args.clients, args.requests, profiles, args.speech_rate)
    for report in reports:
        print(
            f"{report.profile}: {report.clients} clients, {report.requests} requests: {report.failures} failures; "
            f"latency p50 {report.p50_ms:.0f} ms, p95 {report.p95_ms:.0f} ms; {report.throughput_per_s:.1f} "
            f"requests/s; server RSS {report.rss_before_mb:.0f} MB -> {report.rss_after_mb:.0f} MB "
            f"({report.rss_growth_percent:+.1f} %), peak {report.rss_peak_mb:.0f} MB; started in "
            f"{report.startup_s:.1f} s"
        )
        for line in report.failed:
            print("  failed:", line)
    if args.json:
        args.json.write_text(json.dumps([asdict(report) for report in reports], indent=2) + "\n")


if __name__ == "__main__":
    main()
