"""A small run of the load test (`benchmarks/load.py`) against the real server: every request, good or bad, gets its
expected answer while several clients send at once. Only failures and messages are asserted, never times."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import load  # noqa: E402


@pytest.mark.slow
def test_concurrent_clients_get_their_expected_answers(demo_checkpoint):
    mixed, full = load.run_load(demo_checkpoint, clients=4, requests=6, profiles=("mix", "full"))
    assert (mixed.profile, mixed.requests, full.profile, full.requests) == ("mix", 24, "full", 24)
    # The memory read is the server's: it holds the checkpoint's weights, and never more than its own peak.
    weights_mb = sum(f.stat().st_size for f in demo_checkpoint.glob("*.safetensors")) / 2**20
    for report in (mixed, full):
        assert report.failures == 0, report.failed
        assert weights_mb < report.rss_before_mb <= report.rss_peak_mb, report
        assert weights_mb < report.rss_after_mb <= report.rss_peak_mb, report
        assert 0 < report.p50_ms <= report.p95_ms


def test_the_full_request_is_what_a_browser_sends(tmp_path):
    """A 512x512 PNG face, a 4 s WAV and a sentence, all three used."""
    import soundfile
    from PIL import Image

    (request,) = load.full(tmp_path)
    face, speech, text = request.args[:3]
    assert Image.open(face["path"]).size == (512, 512) and Image.open(face["path"]).format == "PNG"
    info = soundfile.info(speech["path"])
    assert info.format == "WAV" and abs(info.duration - 4.0) < 0.01
    assert text and request.endpoint == "/predict" and request.expect == "used:audio,text,vision"


def test_outcomes_are_judged_by_their_messages():
    assert load.outcome_matches("error:nothing usable", "nothing usable to predict from (audio: not given)")
    assert not load.outcome_matches("error:nothing usable", {"used": ["text"]})
    assert not load.outcome_matches("error:nothing usable", "Something went wrong")
    assert load.outcome_matches(
        "missing:audio:could not read", {"used": ["text"], "missing": {"audio": "could not read x"}}
    )
    assert not load.outcome_matches("missing:audio:could not read", {"used": ["audio"], "missing": {}})
    assert load.outcome_matches("used:audio,text", {"used": ["audio", "text"], "missing": {}})
    assert not load.outcome_matches("rows:7", "Queue is full")
