"""The benchmark suite behind ``make bench``: medians and side-by-side ratios, written to JSON and a markdown table.

    python benchmarks/suite.py [--checkpoint checkpoints/default] [--repeats 20] [--out benchmarks/results]

Sections, each measured in this one run so that ratios compare like with like on a noisy machine:

* **fusion**: the MCULoRA forward pass of the checkpoint's model on random features, at batch 1 and 32, for one
  utterance and a 30-utterance dialogue; against a **dense reference formulation** of the same weights (every
  combination adapter computed for every sample on every call, then selected, as the reference implementation
  runs all streams). Also one input under all 7 combinations (ours: one batched pass; dense: one call per
  combination) and a mixed batch of 32 samples with random combinations.
* **predictor**: `Predictor.predict` on the bundled face, speech and a sentence, median per stage; the ablation
  (`predict_combinations`); vision alone (the live webcam's work per frame) as frames per second.
* **training**: one fold of `mculora.training.train` on a synthetic IEMOCAP-sized set (151 dialogues, about 5,500
  utterances, the GCNet features' dims), 3 epochs each under the standard and the reference protocol: seconds per epoch
  (training, validation and DPFT's update) and training utterances per second.
* **clip**: `benchmarks/clip.py` in a process of its own: a 30 s 1280x720 clip with speech and a transcript scored
  under every combination of every window; seconds of clip per wall-clock second, each stage's seconds, peak RSS.
* **app**: ``/predict`` and ``/ablate`` through gradio_client on an in-process server, and their overhead over the
  Predictor; then `benchmarks/load.py` against ``python app.py``: cold start, throughput and p95 with 16 clients on
  the mixed profile and 32 clients on full requests, peak server memory. The clients pass ``ssl_verify=False``
  (the server is plain HTTP; see `served.api_client`); ``/predict`` is also timed with gradio_client's defaults.
* **clip contention**: `benchmarks/clip_contention.py`: ``/predict``'s p50 and p95 idle, and while a 120 s clip
  scores on ``/predict_clip`` of the same server, their ratio, and the clip's speed under that load.

Every median is over ``--repeats`` calls after a warm-up call. Nothing here is asserted: see the README.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the served-app helper the tests use
sys.path.insert(0, str(ROOT / "benchmarks"))
import clip_contention  # noqa: E402
import load  # noqa: E402
from served import served_demo  # noqa: E402

from mculora.lora import AdapterRows, CombinationLoRALinear  # noqa: E402
from mculora.modalities import COMBINATIONS, MODALITIES, mask_table  # noqa: E402
from mculora.model import UtteranceAttention  # noqa: E402
from mculora.serving import server  # noqa: E402
from mculora.serving.allocator import keep_freed_memory  # noqa: E402
from mculora.serving.predictor import Predictor  # noqa: E402
from mculora.serving.torch_thread import TorchThread  # noqa: E402

FACE, SPEECH, TEXT = load.FACE, load.SPEECH, load.TEXT


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def dense_route(self: CombinationLoRALinear, stream_in, combination, like):
    """The dense formulation of `CombinationLoRALinear.route`: every combination's adapter on every sample, then each
    sample's own selected."""
    combination = combination.index if isinstance(combination, AdapterRows) else combination
    every = torch.stack([self.adapter(name, stream_in) for name in COMBINATIONS])  # [7, B, ..., out]
    routed = every[combination.clamp(min=0), torch.arange(combination.numel())]
    return routed * (combination >= 0).view(-1, *[1] * (routed.dim() - 1)).to(routed.dtype)


@contextlib.contextmanager
def dense_adapters() -> Iterator[None]:
    """The dense formulation: `dense_route`, and attention computed in full even over a single utterance."""
    routed, attention = CombinationLoRALinear.route, UtteranceAttention.forward
    CombinationLoRALinear.route, UtteranceAttention.forward = dense_route, UtteranceAttention.attend
    try:
        yield
    finally:
        CombinationLoRALinear.route, UtteranceAttention.forward = routed, attention


def model_inputs(model, batch: int, length: int, masks: torch.Tensor) -> tuple:
    dims = model.config.feature_dims
    generator = torch.Generator().manual_seed(0)
    features = {m: torch.randn(batch, length, dims[m.value], generator=generator) for m in MODALITIES}
    return features, torch.ones(batch, length, dtype=torch.bool), masks


def fusion(model, repeats: int) -> list[dict]:
    rows = []
    complete = torch.ones(1, 3, dtype=torch.bool)
    with torch.inference_mode():

        def measure(name: str, ours: Callable, dense: Callable) -> None:
            reference = dense()
            assert torch.allclose(ours().logits, reference.logits, atol=1e-4), name  # the same function
            ours_ms = median_ms(ours, repeats)
            with dense_adapters():
                dense_ms = median_ms(dense, repeats)
            rows.append({"case": name, "ours_ms": ours_ms, "dense_ms": dense_ms, "ratio": ours_ms / dense_ms})

        def dense_call(*inputs):
            def call():
                with dense_adapters():
                    return model(*inputs)

            return call

        for batch in (1, 32):
            for length in (1, 30):
                inputs = model_inputs(model, batch, length, complete.expand(batch, 3))
                measure(
                    f"forward, batch {batch}, {length} utterance(s)", lambda i=inputs: model(*i), dense_call(*inputs)
                )
        generator = torch.Generator().manual_seed(1)
        mixed = mask_table()[torch.randint(0, len(COMBINATIONS), (32,), generator=generator)]
        inputs = model_inputs(model, 32, 1, mixed)
        measure("mixed batch of 32, random combinations", lambda: model(*inputs), dense_call(*inputs))

        masks = mask_table()
        one = model_inputs(model, 1, 1, complete)
        batched = ({m: f.expand(len(masks), -1, -1) for m, f in one[0].items()}, one[1].expand(len(masks), -1), masks)

        def seven_calls():
            with dense_adapters():
                return [model(one[0], one[1], mask[None]) for mask in masks][-1]

        ablation_ours = median_ms(lambda: model(*batched), repeats)
        ablation_dense = median_ms(seven_calls, repeats)
        rows.append(
            {
                "case": "one input under all 7 combinations (dense: 7 calls)",
                "ours_ms": ablation_ours,
                "dense_ms": ablation_dense,
                "ratio": ablation_ours / ablation_dense,
            }
        )
    return rows


def predictor_section(predictor: Predictor, repeats: int) -> dict:
    inputs = {"image": str(FACE), "audio": str(SPEECH), "text": TEXT}
    predictor.predict(**inputs)
    runs = [predictor.predict(**inputs).timings_ms for _ in range(repeats)]
    stages = {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}
    vision_ms = median_ms(lambda: predictor.predict(image=str(FACE)), repeats)
    all_ms = median_ms(lambda: predictor.predict(**inputs), repeats)
    # With a person's profile against without, call by call in turn so that both see the same machine.
    profile = predictor.enrol(image=str(FACE), audio=str(SPEECH))
    plain, personal = [], []
    for _ in range(repeats):
        for runs, extra in ((plain, {}), (personal, {"profile": profile})):
            start = time.perf_counter()
            predictor.predict(**inputs, **extra)
            runs.append((time.perf_counter() - start) * 1e3)
    return {
        "predict_without_profile_ms": statistics.median(plain),
        "predict_with_profile_ms": statistics.median(personal),
        "profile_ratio": statistics.median(personal) / statistics.median(plain),
        "predict_stages_ms": stages,
        "predict_ms": all_ms,
        "predict_combinations_ms": median_ms(lambda: predictor.predict_combinations(**inputs), repeats),
        "vision_only_predict_ms": vision_ms,
        "frames_per_second_vision_only": 1000 / vision_ms,
        "frames_per_second_all_three": 1000 / all_ms,
    }


def serving_section(predictor: Predictor, rounds: int = 5, per_round: int = 32) -> dict:
    """Full requests (`load.full`: 512x512 PNG, 4 s WAV, a sentence) from the app's `server.CONCURRENCY` request
    threads, three ways: as served (decoding and the face mesh on the request thread, the requests that queue on the
    torch thread run as one batch), the same one at a time (batches of one), and everything on the torch thread (each
    call handed to it whole). The ways alternate round by round; requests/s is the median of rounds."""
    threads = min(server.CONCURRENCY, per_round)
    with tempfile.TemporaryDirectory() as folder:
        (request,) = load.full(Path(folder))
        inputs = {"image": request.args[0]["path"], "audio": request.args[1]["path"], "text": request.args[2]}
        ways = {
            "batched": (predictor.torch_thread.max_batch, lambda: predictor.predict(**inputs)),
            "one_at_a_time": (1, lambda: predictor.predict(**inputs)),
            "all_on_torch_thread": (1, lambda: predictor.torch_thread.run(predictor.predict, **inputs)),
        }
        throughput = {way: [] for way in ways}
        served_batch = predictor.torch_thread.max_batch
        try:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for way, (max_batch, call) in [*ways.items()] * rounds:
                    predictor.torch_thread.max_batch = max_batch
                    list(pool.map(lambda _, call=call: call(), range(threads)))  # warm every thread
                    start = time.perf_counter()
                    list(pool.map(lambda _, call=call: call(), range(per_round)))
                    throughput[way].append(per_round / (time.perf_counter() - start))
        finally:
            predictor.torch_thread.max_batch = served_batch
    medians = {way: statistics.median(values) for way, values in throughput.items()}
    return {
        "threads": threads,
        **{f"{way}_per_s": value for way, value in medians.items()},
        "batching_gain": medians["batched"] / medians["one_at_a_time"],
        "decode_overlap_gain": medians["one_at_a_time"] / medians["all_on_torch_thread"],
    }


def training_section() -> dict:
    from mculora.data import load_corpus
    from mculora.data.synthetic import write_synthetic
    from mculora.training.config import parse_args
    from mculora.training.train import run

    with tempfile.TemporaryDirectory() as folder:
        # IEMOCAP's 4-way set: 151 dialogues, 5,531 utterances (20-53 per dialogue here); wav2vec-large, DeBERTa-large
        # and MANet utterance features are 512, 1024 and 1024-d.
        root = write_synthetic(
            Path(folder) / "iemocap", dialogues=151, seed=0, dims=(512, 1024, 1024), lengths=(20, 53)
        )
        corpus = load_corpus("iemocap4", root)
        split = corpus.splits(0.1, seed=0)[0]
        utterances = sum(len(corpus.dialogues[name]) for name in split.train)
        section = {"dialogues": len(corpus.dialogues), "train_utterances": utterances}
        for protocol in ("standard", "reference"):
            flags = ["--dataset", "iemocap4", "--data-root", str(root), "--epochs", "3", "--folds", "1"]
            config = parse_args([*flags, "--seeds", "1", "--protocol", protocol, "--device", "cpu"])
            seconds = run(config)["seconds_per_epoch_median"]
            section[protocol] = {"seconds_per_epoch": seconds, "utterances_per_second": utterances / seconds}
    return section


def app_section(predictor: Predictor, checkpoint: Path, repeats: int, direct: dict) -> dict:
    args = [handle_file(str(FACE)), handle_file(str(SPEECH)), TEXT, True, True, True, None]
    with served_demo(predictor, checkpoint) as (_, client):
        predict_ms = median_ms(lambda: client.predict(*args, api_name="/predict"), repeats)
        ablate_ms = median_ms(lambda: client.predict(*args, api_name="/ablate"), repeats)
        # gradio_client as it comes (TLS verification on, so a new TLS context per upload and per call), for
        # comparison with the clients above and below, which turn that off for the plain-HTTP local server.
        default_client = Client(client.src, verbose=False)
        default_ms = median_ms(lambda: default_client.predict(*args, api_name="/predict"), repeats)
        default_client.close()
    (report,) = load.run_load(checkpoint, clients=16, requests=6, profiles=("mix",))
    (full,) = load.run_load(checkpoint, clients=32, requests=8, profiles=("full",))
    return {
        "api_predict_ms": predict_ms,
        "api_predict_overhead_ms": predict_ms - direct["predict_ms"],
        "api_predict_default_client_ms": default_ms,
        "api_predict_default_client_overhead_ms": default_ms - direct["predict_ms"],
        "api_ablate_ms": ablate_ms,
        "api_ablate_overhead_ms": ablate_ms - direct["predict_combinations_ms"],
        "load_16_clients": {
            "requests": report.requests,
            "failures": report.failures,
            "throughput_per_s": report.throughput_per_s,
            "p50_ms": report.p50_ms,
            "p95_ms": report.p95_ms,
        },
        "load_32_clients_full_requests": {
            "requests": full.requests,
            "failures": full.failures,
            "throughput_per_s": full.throughput_per_s,
            "p50_ms": full.p50_ms,
            "p95_ms": full.p95_ms,
            "rss_growth_percent": full.rss_growth_percent,
        },
        "cold_start_s": report.startup_s,
        "server_peak_rss_mb": report.rss_peak_mb,
    }


def clip_section(checkpoint: Path) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "clip.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "clip.py"), "--checkpoint", str(checkpoint), "--json"]
        subprocess.run([*command, str(out)], check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def markdown(results: dict) -> str:
    lines = [f"# Benchmarks ({results['machine']})", "", "| fusion case | ours (ms) | dense (ms) | ours / dense |"]
    lines.append("|---|---|---|---|")
    lines += [
        f"| {r['case']} | {r['ours_ms']:.2f} | {r['dense_ms']:.2f} | {r['ratio']:.2f} |" for r in results["fusion"]
    ]
    predictor, app, training, clip = results["predictor"], results["app"], results["training"], results["clip"]
    lines += [
        "",
        f"| training, fold 1 of a synthetic IEMOCAP-sized set ({training['train_utterances']:,} training "
        "utterances) | s / epoch | utterances / s |",
        "|---|---|---|",
    ]
    lines += [
        f"| `--protocol {protocol}` | {training[protocol]['seconds_per_epoch']:.2f} "
        f"| {training[protocol]['utterances_per_second']:.0f} |"
        for protocol in ("standard", "reference")
    ]
    stages = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in clip["stage_s"].items())
    lines += [
        "",
        f"| clip ({clip['clip']}; {clip['windows']} windows, {clip['rows']} rows) | median |",
        "|---|---|",
        f"| scoring, every combination | {clip['wall_s']:.1f} s: {clip['realtime_factor']:.1f}x real time |",
        f"| stages | {stages}; other {clip['other_s']:.2f} s |",
        f"| annotated MP4 | {clip['annotated_mp4_s']:.1f} s |",
        f"| peak RSS of the scoring process | {clip['peak_rss_mb']:.0f} MB |",
    ]
    lines += ["", "| end to end | median |", "|---|---|"]
    lines += [f"| predict stage `{s}` | {ms:.1f} ms |" for s, ms in predictor["predict_stages_ms"].items()]
    lines += [
        f"| `Predictor.predict` (bundled face + speech + a sentence) | {predictor['predict_ms']:.1f} ms |",
        "| `Predictor.predict` with a person's profile / without, in turn | "
        f"{predictor['predict_with_profile_ms']:.1f} / {predictor['predict_without_profile_ms']:.1f} ms "
        f"({predictor['profile_ratio']:.3f}x) |",
        f"| `Predictor.predict_combinations` | {predictor['predict_combinations_ms']:.1f} ms |",
        f"| vision only (live webcam work per frame) | {predictor['frames_per_second_vision_only']:.1f} frames/s |",
        f"| all three per frame | {predictor['frames_per_second_all_three']:.1f} frames/s |",
        "| full requests from {threads} request threads: as served (queued requests batched) / one at a time / "
        "everything on the torch thread | {batched_per_s:.1f} / {one_at_a_time_per_s:.1f} / "
        "{all_on_torch_thread_per_s:.1f} requests/s (batching {batching_gain:.2f}x, decoding on the request thread "
        "{decode_overlap_gain:.2f}x) |".format(**results["serving"]),
        f"| `/predict` through gradio_client (`ssl_verify=False`) | {app['api_predict_ms']:.0f} ms "
        f"(+{app['api_predict_overhead_ms']:.0f} ms over the Predictor) |",
        f"| `/predict` through gradio_client with its defaults | {app['api_predict_default_client_ms']:.0f} ms "
        f"(+{app['api_predict_default_client_overhead_ms']:.0f} ms) |",
        f"| `/ablate` through gradio_client (`ssl_verify=False`) | {app['api_ablate_ms']:.0f} ms "
        f"(+{app['api_ablate_overhead_ms']:.0f} ms) |",
        f"| 16 concurrent clients (`ssl_verify=False`), {app['load_16_clients']['requests']} mixed requests | "
        f"{app['load_16_clients']['throughput_per_s']:.1f} requests/s, p95 {app['load_16_clients']['p95_ms']:.0f} ms, "
        f"{app['load_16_clients']['failures']} failures |",
        "| 32 concurrent clients (`ssl_verify=False`), {requests} full requests (512x512 PNG + 4 s WAV + sentence) "
        "| {throughput_per_s:.1f} requests/s, p50 {p50_ms:.0f} ms, p95 {p95_ms:.0f} ms, {failures} failures, RSS "
        "{rss_growth_percent:+.1f} % |".format(**app["load_32_clients_full_requests"]),
        f"| app cold start (process start to page served) | {app['cold_start_s']:.1f} s |",
        f"| server peak RSS | {app['server_peak_rss_mb']:.0f} MB |",
    ]
    sharing = results["clip_contention"]
    lines += [
        "",
        f"| `/predict` while another visitor's clip scores ({sharing['clip']}) | p50 | p95 |",
        "|---|---|---|",
        f"| idle | {sharing['predict_idle_p50_ms']:.0f} ms | {sharing['predict_idle_p95_ms']:.0f} ms |",
        f"| while the clip scores ({sharing['predict_calls_under_clip']} calls) | "
        f"{sharing['predict_under_clip_p50_ms']:.0f} ms | {sharing['predict_under_clip_p95_ms']:.0f} ms "
        f"({sharing['p95_ratio']:.2f}x idle) |",
        f"| the clip meanwhile | {sharing['clip_wall_s']:.1f} s: {sharing['clip_realtime_factor']:.1f}x real time | |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="writes OUT.json, OUT.md")
    args = parser.parse_args()
    keep_freed_memory()  # as the served app does at start-up
    # The Predictor and the sections' own torch work run on one thread, so that this process keeps one OpenMP team,
    # as the served app does (see `mculora.serving.torch_thread`).
    torch_thread = TorchThread()
    predictor = Predictor.from_pretrained(args.checkpoint, device="cpu", torch_thread=torch_thread)
    results = {
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}, {predictor.device}",
        "fusion": torch_thread.run(fusion, predictor.model, args.repeats),
        "predictor": predictor_section(predictor, args.repeats),
        "serving": serving_section(predictor),
        "training": torch_thread.run(training_section),
        "clip": clip_section(args.checkpoint),
    }
    results["app"] = app_section(predictor, args.checkpoint, args.repeats, results["predictor"])
    results["clip_contention"] = clip_contention.measure(predictor, args.checkpoint)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
