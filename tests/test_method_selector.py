"""Several methods on one input: the shipped peer checkpoint served beside MCULoRA's by the Predictor and the app."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mculora.checkpoint import CheckpointError, read_checkpoint_config, sibling_checkpoints  # noqa: E402
from mculora.encoders import EncoderMismatch  # noqa: E402
from mculora.serving.predictor import Predictor, UnknownMethod  # noqa: E402
from mculora.training.evaluate import CONDITIONS  # noqa: E402

PEER = ROOT / "checkpoints" / "mplmm"
FACE = ROOT / "assets" / "examples" / "astronaut.jpg"
SPEECH = ROOT / "assets" / "examples" / "happy_speech.wav"
TEXT = "I can't believe it, this is wonderful news!"
INPUTS = {"image": str(FACE), "audio": str(SPEECH), "text": TEXT}


@pytest.fixture(scope="module")
def peer_checkpoint(demo_checkpoint) -> Path:
    if demo_checkpoint.resolve() != (ROOT / "checkpoints" / "default").resolve():
        pytest.skip("MCULORA_CHECKPOINT is not the shipped checkpoint; the shipped peer belongs to that one")
    return PEER


@pytest.fixture(scope="module")
def both(demo_checkpoint, peer_checkpoint) -> Predictor:
    return Predictor.from_pretrained(demo_checkpoint, device="cpu", compare_with=[peer_checkpoint])


def test_the_shipped_peer_is_found_beside_the_default_and_was_trained_on_the_real_corpus(
    demo_checkpoint, peer_checkpoint
):
    assert sibling_checkpoints(demo_checkpoint) == [peer_checkpoint.resolve()]
    config = read_checkpoint_config(peer_checkpoint)
    assert config.method == "mplmm" and config.architecture == "mplmm" and config.dataset == "ekman7-paired"
    assert set(config.temperatures) == set(CONDITIONS)
    metrics = json.loads((peer_checkpoint / "metrics.json").read_text())
    # Well above chance (1/7) under every condition on the real label-paired test samples, and fusion helps.
    accuracy = {c: metrics["paired_test"][c]["accuracy"] for c in CONDITIONS}
    assert min(accuracy.values()) > 0.45 and accuracy["atv"] > max(accuracy["a"], accuracy["t"], accuracy["v"]) + 0.1
    card = (peer_checkpoint / "README.md").read_text()
    assert "MPLMM" in card and "Against MCULoRA" in card and "| atv |" in card and "Adapter health" not in card


def test_each_method_gives_what_its_own_checkpoint_gives(both, demo_checkpoint, peer_checkpoint):
    assert both.methods == ["mcu-lora", "mplmm"]
    for method, path in (("mcu-lora", demo_checkpoint), ("mplmm", peer_checkpoint)):
        alone = Predictor.from_pretrained(path, device="cpu").predict(**INPUTS)
        shared = both.predict(**INPUTS, method=method)
        assert shared.method == method == alone.method and shared.label == alone.label
        for label, p in alone.probabilities.items():
            assert shared.probabilities[label] == pytest.approx(p, abs=1e-6)
    assert both.predict(**INPUTS).method == "mcu-lora"  # the first checkpoint is the default
    assert not both.predict(**INPUTS, method="mplmm").contributions.adapters
    assert both.predict(**INPUTS).contributions.adapters


def test_side_by_side_combinations_are_each_methods_own(both):
    rows = both.predict_combinations(**INPUTS, methods=both.methods)
    assert [r.method for r in rows] == ["mcu-lora"] * 7 + ["mplmm"] * 7
    for method in both.methods:
        alone = both.predict_combinations(**INPUTS, methods=[method])
        assert [(r.combination, r.label) for r in rows if r.method == method] == [
            (r.combination, r.label) for r in alone
        ]
    # The methods are different networks: they do not give the same probabilities.
    first, second = rows[0].probabilities, rows[7].probabilities
    assert max(abs(first[k] - second[k]) for k in first) > 1e-3


def test_unknown_or_mismatched_methods_are_refused_with_a_reason(both, demo_checkpoint, tmp_path):
    with pytest.raises(UnknownMethod, match="no checkpoint for method 'wander'.*mcu-lora, mplmm"):
        both.predict(text=TEXT, method="wander")
    with pytest.raises(CheckpointError, match="two checkpoints of method 'mcu-lora'"):
        Predictor.from_pretrained(demo_checkpoint, device="cpu", compare_with=[demo_checkpoint])
    # A checkpoint over other encoders (the RAVDESS action-unit benchmark's) cannot share the demo's.
    with pytest.raises(EncoderMismatch, match="ravdess-au"):
        Predictor.from_pretrained(demo_checkpoint, device="cpu", compare_with=[demo_checkpoint / "ravdess_au"])


@pytest.fixture(scope="module")
def served_methods(both, demo_checkpoint, peer_checkpoint):
    from served import served_demo

    with served_demo(both, demo_checkpoint, compared=[peer_checkpoint]) as pair:
        yield pair


@pytest.mark.slow
def test_the_api_runs_the_method_asked_for(served_methods, both):
    from gradio_client import handle_file

    _, client = served_methods
    files = (handle_file(FACE), handle_file(SPEECH), TEXT, True, True, True, None)
    for method in both.methods:
        api = client.predict(*files, method, api_name="/predict")
        direct = both.predict(**INPUTS, method=method)
        assert api["method"] == method and api["label"] == direct.label
        for label, p in direct.probabilities.items():
            assert api["probabilities"][label] == pytest.approx(p, abs=1e-5)
        ablation = client.predict(*files, method, api_name="/ablate")
        assert {row["method"] for row in ablation["rows"]} == {method} and len(ablation["rows"]) == 7
    assert client.predict(*files, api_name="/predict")["method"] == "mcu-lora"  # the default when left out


@pytest.mark.slow
def test_a_bad_method_gets_a_clear_message_and_the_server_keeps_serving(served_methods):
    _, client = served_methods
    with pytest.raises(Exception, match="not in the list of choices|no checkpoint for method"):
        client.predict(None, None, TEXT, True, True, True, None, "wander", api_name="/predict")
    assert client.predict(None, None, TEXT, True, True, True, None, "mplmm", api_name="/predict")["used"] == ["text"]


def test_the_page_shows_both_methods_side_by_side(both, tmp_path):
    from mculora.serving import plots
    from mculora.serving.demo import DemoCallbacks

    callbacks = DemoCallbacks(both)
    heatmap, table, csv_path, json_path = callbacks.ablate_view(
        str(FACE), str(SPEECH), TEXT, None, True, True, True, "mplmm", True
    )
    assert [trace.type for trace in heatmap.data] == ["heatmap", "heatmap"]
    assert [a.text for a in heatmap.layout.annotations][:2] == ["mcu-lora", "mplmm"]
    assert table["headers"][0] == "method" and [row[0] for row in table["data"]] == ["mcu-lora"] * 7 + ["mplmm"] * 7
    assert Path(csv_path).read_text().startswith("method,combination,predicted,")
    alone = callbacks.ablate_view(str(FACE), str(SPEECH), TEXT, None, True, True, True, "mplmm", False)[1]
    assert alone["headers"][0] == "combination" and len(alone["data"]) == 7
    assert alone["data"] == [row[1:] for row in table["data"][7:]]
    contributions = callbacks.predict_view(str(FACE), str(SPEECH), TEXT, None, True, True, True, False, None, "mplmm")[
        2
    ]
    assert "mplmm has no adapters" in contributions.layout.title.text
    assert plots.ablation_record(both.predict_combinations(text=TEXT), both.labels)["rows"][0]["method"] == "mcu-lora"


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    """Four seconds of the example face while the example voice speaks."""
    import numpy as np
    from PIL import Image

    from mculora.preprocess.audio import prepare_audio
    from mculora.serving.clip_writer import compose_clip

    face = np.asarray(Image.open(FACE).convert("RGB"))
    speech = prepare_audio(str(SPEECH)).samples
    return compose_clip(tmp_path_factory.mktemp("talk") / "talk.mp4", [(face, speech, 4.0)], width=320, height=240)


def _close(summary: dict, other: dict) -> bool:
    return all(
        other[combination][label] == pytest.approx(p, abs=1e-5)
        for combination, probabilities in summary.items()
        for label, p in probabilities.items()
    )


@pytest.mark.slow
def test_a_clip_scored_under_both_methods_gives_each_methods_own_windows(both, talk):
    together = both.predict_clip(str(talk), methods=both.methods)
    assert together.methods == both.methods == ["mcu-lora", "mplmm"]
    for window in together.windows:
        assert {row.method for row in window.rows} == set(both.methods)
        assert window.all_modalities("mplmm").combination == window.all_modalities("mcu-lora").combination
    for method in both.methods:
        alone = both.predict_clip(str(talk), methods=[method])
        assert alone.methods == [method] and _close(alone.summary[method], together.summary[method])
    assert together.summary["mplmm"] != together.summary["mcu-lora"]


@pytest.mark.slow
def test_predict_clip_runs_the_method_asked_for_and_the_page_shows_both(served_methods, both, talk):
    from gradio_client import handle_file

    from mculora.serving.demo import ClipJob, DemoCallbacks

    _, client = served_methods
    api = client.predict(handle_file(str(talk)), None, "", True, True, True, "mplmm", api_name="/predict_clip")
    direct = both.predict_clip(str(talk), methods=["mplmm"])
    assert api["methods"] == ["mplmm"] and _close(api["summary"]["mplmm"], direct.summary["mplmm"])

    outputs = DemoCallbacks(both).clip_view(str(talk), None, "", True, True, True, "mplmm", True, ClipJob())
    result = outputs[-1]
    assert result.methods == ["mcu-lora", "mplmm"]
    strip = outputs[2]  # one panel of cells per method, stacked
    assert [a.text for a in strip.layout.annotations] == ["mcu-lora", "mplmm"] and len(strip.data) == 2
    peer_panel = strip.data[1]
    shown = [cell.split()[0] for cell in peer_panel.customdata[list(peer_panel.y).index("av")]]
    assert shown == [window.row("mplmm", "av").label for window in result.windows]
    assert [row["method"] for row in json.loads(Path(outputs[5]).read_text())["windows"][0]["rows"]][-1] == "mplmm"
