"""Opt-in speech-to-text for clips (mculora.serving.transcribe): fetched from the Hub by name, cached, failing at once
offline, and its cues giving the windows their text.

The model here is an UNTRAINED Whisper of a few thousand random weights that this test builds and publishes to
`hub_standin.HubStandIn`: its words are noise. It checks the plumbing (download, the transformers pipeline, timed
chunks -> cues -> windows), never what a real Whisper would hear."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from hub_standin import HubStandIn
from huggingface_hub import HfApi, constants

from mculora.preprocess.transcript import Cue
from mculora.serving import transcribe
from mculora.serving.clip_writer import compose_clip

REPO = "someone/untrained-tiny-whisper"
UNTRAINED = "UNTRAINED: random weights built by tests/test_transcribe.py; its transcripts are noise."


def untrained_whisper(folder: Path) -> Path:
    """A Whisper with one tiny layer each way, random weights, and a byte-level vocabulary with Whisper's special
    and timestamp tokens, saved as a transformers model directory."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(bytes_to_unicode().values())}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end, bos_token=end, eos_token=end
    )
    specials = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": [end, *specials]})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in [end, *specials]}
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_target_positions=64,
        pad_token_id=ids[end],
        bos_token_id=ids[end],
        eos_token_id=ids[end],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids[end],
        pad_token_id=ids[end],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=False,
        max_length=16,
        begin_suppress_tokens=[],
        suppress_tokens=[],
    )
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)
    card = f"---\nlicense: mit\ntags: [untrained, test-fixture]\n---\n\n# untrained tiny Whisper\n\n{UNTRAINED}\n"
    (folder / "README.md").write_text(card)
    return folder


@pytest.fixture
def published(monkeypatch, tmp_path):
    """The untrained Whisper on a Hub stand-in (HF_ENDPOINT), with a fresh cache."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubStandIn() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        api = HfApi(endpoint=server.url, token="test")
        api.create_repo(REPO, exist_ok=True)
        api.upload_folder(repo_id=REPO, folder_path=untrained_whisper(tmp_path / "whisper"))
        yield server
        assert not server.unknown, server.unknown


def speech(seconds: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_a_named_model_is_fetched_and_gives_timed_cues(published, tmp_path):
    cues = transcribe.transcribe(speech(), REPO)
    assert cues, "no cues"
    assert all(isinstance(cue, Cue) and 0 <= cue.start <= cue.end <= 3.0 and cue.text for cue in cues)
    directory = transcribe.model_directory(REPO)
    assert (directory / "model.safetensors").is_file() and (directory / "merges.txt").is_file()
    assert UNTRAINED in (directory / "README.md").read_text()


def test_clips_take_their_text_from_the_transcription(published, predictor, tmp_path, monkeypatch):
    """Each window gets the text of the machine cues it overlaps; the result says it is a machine transcript."""
    clip = compose_clip(tmp_path / "voice.mp4", [(None, speech(4.0), 4.0)], width=None)
    fixed = [Cue(0.0, 1.5, "first words"), Cue(2.5, 4.0, "last words")]
    calls, real = [], transcribe.transcribe

    def recorded(samples, model, device=None):
        calls.append(real(samples, model, device))  # the real model runs...
        return fixed  # ...and fixed cues make the windows checkable

    monkeypatch.setattr(transcribe, "transcribe", recorded)
    result = predictor.predict_clip(clip, transcribe=REPO)
    assert len(calls) == 1
    texts = [w.text for w in result.windows]  # windows from 0, 1, 2 (and 3 if codec padding lengthens the clip)
    assert texts[:3] == ["first words", "first words last words", "last words"] and set(texts[3:]) <= {"last words"}
    assert any(f"machine transcript by {REPO}" in note for note in result.notes)
    typed = predictor.predict_clip(clip, text="typed", transcribe=REPO)
    assert len(calls) == 1 and {w.text for w in typed.windows} == {"typed"}  # a typed sentence is not overridden


def test_unreachable_hub_fails_at_once_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(transcribe.TranscriptionError, match="cannot load speech-to-text model .* no copy is cached"):
        transcribe.transcribe(speech(), "openai/whisper-small")


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(transcribe.TranscriptionError, match="not a speech-to-text model"):
        transcribe.transcribe(speech(), tmp_path)
