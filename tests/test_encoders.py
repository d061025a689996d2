"""The offline encoders load without network; the hub profile fails offline with a clear message."""

import socket

import pytest
import torch

from mculora.encoders import EncoderMismatch, EncoderUnavailable, build_encoders, check_encoders, describe_encoders
from mculora.encoders.text_net import WEIGHTS_FILE, EmotionTextEncoder
from mculora.modalities import Modality
from mculora.preprocess import UnusableInput
from mculora.preprocess.text import prepare_text


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def text_encoder(demo_checkpoint):
    return EmotionTextEncoder(demo_checkpoint / WEIGHTS_FILE)


def test_text_encoder_loads_offline_and_ranks_meaning(no_network, text_encoder):
    vectors = text_encoder.encode(["I am so happy today", "what a joyful day", "I am furious"])
    assert vectors.shape == (3, 391) and text_encoder.dim == 391 and vectors.dtype == torch.float32
    embeddings = vectors[:, :384]  # the sentence embeddings are unit length
    cosine = embeddings @ embeddings.T
    assert cosine[0, 1] > cosine[0, 2] + 0.2
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_text_encoding_is_batch_independent(text_encoder):
    batch = text_encoder.encode(["short", "a much longer sentence that needs padding for the first one"])
    alone = text_encoder.encode(["short"])
    torch.testing.assert_close(batch[0], alone[0], atol=1e-5, rtol=1e-4)


def test_offline_profile_builds_without_network(no_network, demo_checkpoint):
    encoders = build_encoders("offline", weights=demo_checkpoint)
    record = describe_encoders("offline", encoders)
    assert record["profile"] == "offline"
    assert {m: record[m]["dim"] for m in ("audio", "text", "vision")} == {m.value: encoders[m].dim for m in Modality}
    check_encoders(record, encoders)
    wrong = dict(record, text={"name": "other-text-model", "dim": 384})
    with pytest.raises(EncoderMismatch, match="different encoders"):
        check_encoders(wrong, encoders)
    with pytest.raises(EncoderMismatch, match="cannot compute"):
        check_encoders(dict(record, profile="features"), encoders)


@pytest.mark.parametrize("modality", list(Modality))
def test_hub_profile_fails_offline_with_a_clear_message(no_network, modality, monkeypatch, tmp_path):
    # An empty cache: nothing may be found locally, and the network is closed.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(EncoderUnavailable, match="(?s)'hub' encoder profile needs .* 'offline' profile"):
        build_encoders("hub", modalities=[modality])


def test_unknown_profile():
    with pytest.raises(EncoderUnavailable, match="unknown encoder profile"):
        build_encoders("cloud")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("  I   am\n\thappy  ", "I am happy"), ("ｆｕｌｌ width", "full width"), ("zero\u200bwidth", "zero width")],
)
def test_text_cleanup(raw, clean):
    assert prepare_text(raw) == clean


@pytest.mark.parametrize("bad", [None, "", "   \n\t ", 42])
def test_unusable_text(bad):
    with pytest.raises(UnusableInput):
        prepare_text(bad)


def test_text_is_capped():
    """The first MAX_CHARACTERS characters after clean-up, exactly (the cut's trailing space dropped)."""
    from mculora.preprocess.text import MAX_CHARACTERS

    text = " ".join(f"w{i}" for i in range(1000))
    capped = prepare_text(text)
    assert MAX_CHARACTERS == 1000 and capped == text[:MAX_CHARACTERS].strip()
    assert prepare_text("  a\tb\n" + "x" * 2000)[:5] == "a b x" and len(prepare_text("x" * 2000)) == MAX_CHARACTERS
