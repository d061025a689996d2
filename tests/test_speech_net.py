"""The speech network of the offline audio encoder: its invariants, its storage, the determinism of its training,
and (with the shipped weights) its record in the checkpoint and what it recognises in the bundled clips."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mculora.encoders import EncoderUnavailable, build_encoders
from mculora.encoders.acoustic_descriptor import AcousticDescriptor
from mculora.encoders.base import weights_digest
from mculora.encoders.speech_net import (
    MIN_FRAMES,
    N_MELS,
    NUM_CLASSES,
    WEIGHTS_FILE,
    LogMel,
    SpeechEmotionEncoder,
    SpeechEmotionNet,
    fit_length,
    load_speech_net,
    save_speech_net,
)
from mculora.modalities import Modality
from mculora.preprocess.audio import TARGET_SAMPLE_RATE, prepare_audio
from mculora.recipes.sources import EKMAN, Item
from mculora.recipes.speech import SpeechTrainConfig, augmented_batch, train_speech_net

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * TARGET_SAMPLE_RATE)) / TARGET_SAMPLE_RATE
    pitch = 120 + 40 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)
    voice = np.sin(2 * np.pi * np.cumsum(pitch) / TARGET_SAMPLE_RATE) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * voice + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_network_shapes_and_level_invariance():
    torch.manual_seed(0)
    net = SpeechEmotionNet().eval()
    spectra = torch.stack([LogMel()(_speechlike(1.5, seed)) for seed in range(2)])
    assert spectra.shape[1] == N_MELS
    with torch.no_grad():
        features = net.embed(spectra)
        assert features.shape == (2, net.embedding_dim) and net(spectra).shape == (2, NUM_CLASSES)
        # A quieter recording shifts every log-mel value by the same dB: the standardisation removes it.
        torch.testing.assert_close(net.embed(spectra - 12.0), features, atol=1e-4, rtol=1e-4)


def test_short_clips_are_repeated_to_the_networks_minimum():
    spectrum = LogMel()(_speechlike(0.05, 0))
    assert spectrum.shape[1] < MIN_FRAMES <= fit_length(spectrum).shape[1]
    long = LogMel()(_speechlike(1.0, 0))
    assert fit_length(long) is long


def test_weights_round_trip_and_unusable_files_say_why(tmp_path):
    torch.manual_seed(0)
    net = SpeechEmotionNet().eval()
    save_speech_net(net, tmp_path / WEIGHTS_FILE)
    loaded = load_speech_net(tmp_path / WEIGHTS_FILE)
    spectra = LogMel()(_speechlike(1.0, 1))[None]
    with torch.no_grad():
        assert torch.equal(loaded(spectra), net(spectra))
    assert weights_digest(loaded.state_dict()) == weights_digest(net.state_dict())
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(EncoderUnavailable, match="not a usable speech network"):
        load_speech_net(tmp_path / WEIGHTS_FILE)
    with pytest.raises(EncoderUnavailable, match=f"needs the speech network's weights.*{WEIGHTS_FILE}"):
        load_speech_net(tmp_path / "missing" / WEIGHTS_FILE)
    with pytest.raises(EncoderUnavailable, match="checkpoint .*directory"):
        build_encoders("offline", modalities=[Modality.AUDIO])


def test_augmentation_is_seeded_and_repeats_short_clips():
    spectra = [LogMel()(_speechlike(seconds, 0)) for seconds in (0.6, 4.0)]
    first = augmented_batch(spectra, 300, torch.Generator().manual_seed(1))
    assert first.shape == (2, N_MELS, 300)
    assert torch.equal(first, augmented_batch(spectra, 300, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, augmented_batch(spectra, 300, torch.Generator().manual_seed(2)))
    # The 0.6 s clip (61 frames) is repeated, not padded with silence.
    assert torch.equal(first[0, :, :61], first[0, :, 61:122])


@pytest.mark.parametrize("variants", [0, 2])
def test_training_is_bit_reproducible(tmp_path, variants):
    """Same seed, same clips -> identical weights: what keeps `make checkpoint` bit-reproducible; with augmented
    copies of the clips too (they are drawn from the seed)."""
    items = []
    for index in range(28):
        path = tmp_path / f"clip{index}.wav"
        sf.write(path, _speechlike(0.8, index), TARGET_SAMPLE_RATE)
        split = "test" if index >= 24 else "val" if index >= 20 else "train"
        items.append(Item(f"c{index}", Modality.AUDIO, EKMAN[index % 7], split, "ravdess", f"a{index}", path=path))
    config = SpeechTrainConfig(epochs=2, batch_size=8, augment_variants=variants)
    runs = [train_speech_net(config, items, log=lambda line: None) for _ in range(2)]
    assert weights_digest(runs[0][0].state_dict()) == weights_digest(runs[1][0].state_dict())
    assert set(runs[0][1]["test_accuracy"]) == {"ravdess"}
    if variants:  # the copies change what the network learns
        clean = train_speech_net(SpeechTrainConfig(epochs=2, batch_size=8), items, log=lambda line: None)[0]
        assert weights_digest(clean.state_dict()) != weights_digest(runs[0][0].state_dict())


# -- the shipped speech network ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(demo_checkpoint):
    return SpeechEmotionEncoder(demo_checkpoint / WEIGHTS_FILE)


def test_shipped_encoder_dimension_and_checkpoint_record(demo_checkpoint, shipped):
    assert shipped.dim == AcousticDescriptor.dim + 256 + NUM_CLASSES == 426
    clips = [prepare_audio(ASSETS / name).samples for name in ("happy_speech.wav", "sad_speech.wav")]
    vectors = shipped.encode(clips)
    assert vectors.shape == (2, 426) and vectors.dtype == torch.float32 and torch.isfinite(vectors).all()
    # The descriptor part is the hand-built descriptor and the rest the network on its own log-mel input, bit for
    # bit, though both share one spectrogram; each clip is encoded alone (batch independent).
    assert torch.equal(vectors[:, : AcousticDescriptor.dim], shipped.descriptor.encode(clips))
    with torch.inference_mode():
        learned = shipped.net.embed(fit_length(LogMel()(shipped.descriptor.as_waveform(clips[0])))[None])
        alone = torch.cat([learned, shipped.net.head(learned)], 1)[0]
    assert torch.equal(vectors[0, AcousticDescriptor.dim :], alone)
    torch.testing.assert_close(vectors[1], shipped.encode(clips[1:])[0])
    record = json.loads((demo_checkpoint / "config.json").read_text())["encoders"]
    assert record["audio"] == shipped.spec()


def test_speech_level_and_microphone_colouring_are_taken_out():
    from mculora.preprocess.audio import SPEECH_LEVEL_DBFS, loud_frames, normalise_speech_level

    clip = _speechlike(2.0, 3)
    quiet = 0.05 * clip  # the same voice 26 dB lower, e.g. a laptop microphone far away
    normalised = normalise_speech_level(quiet)
    frames = normalised[: normalised.size // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames[loud_frames(normalised)[: len(frames)]] ** 2))
    assert level == pytest.approx(SPEECH_LEVEL_DBFS, abs=0.1)
    np.testing.assert_allclose(normalise_speech_level(clip), normalised, rtol=1e-4, atol=1e-6)
    # The v2 descriptor describes the voice, not the gain; v1 (older checkpoints) measured the gain too.
    v1, v2 = AcousticDescriptor(), AcousticDescriptor(level_normalised=True)
    assert v2.name == "acoustic-stats-v2" and v1.name == "acoustic-stats-v1"
    torch.testing.assert_close(v2.encode([quiet])[0], v2.encode([clip])[0], atol=1e-3, rtol=1e-3)
    assert (v1.encode([quiet])[0] - v1.encode([clip])[0]).abs().max() > 10  # dB values moved by 26 dB

    # A fixed colouring of the spectrum (a microphone's response: some bands louder, others quieter throughout)
    # leaves a band-normalised network's features unchanged; the utterance-wide standardisation keeps it.
    torch.manual_seed(0)
    spectrum = LogMel()(clip)[None]
    colouring = torch.linspace(-9.0, 6.0, N_MELS)[None, :, None]
    with torch.no_grad():
        banded = SpeechEmotionNet(band_normalised=True).eval()
        torch.testing.assert_close(banded.embed(spectrum + colouring), banded.embed(spectrum), atol=1e-4, rtol=1e-4)
        plain = SpeechEmotionNet().eval()
        reference = plain.embed(spectrum)
        assert (plain.embed(spectrum + colouring) - reference).abs().max() > 0.05 * reference.abs().max()


def test_a_saved_network_carries_its_input_conventions(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = SpeechEmotionNet(band_normalised=True)
    save_speech_net(net, tmp_path / WEIGHTS_FILE)
    assert load_speech_net(tmp_path / WEIGHTS_FILE).band_normalised
    encoder = SpeechEmotionEncoder(tmp_path / WEIGHTS_FILE)
    assert encoder.name.startswith("acoustic-stats-v2+speech-cnn-")
    # A file from before the conventions were recorded (no metadata) keeps what it was trained with.
    legacy = tmp_path / "legacy" / WEIGHTS_FILE
    legacy.parent.mkdir()
    save_file({name: tensor.contiguous() for name, tensor in net.state_dict().items()}, str(legacy))
    older = SpeechEmotionEncoder(legacy)
    assert not older.net.band_normalised and older.name.startswith("acoustic-stats-v1+")
