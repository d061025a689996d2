"""Browser and phone conditions for training the speech network (mculora.recipes.speech_augment): each step does
what it claims on real speech, and the chain is reproducible from its seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mculora.encoders.speech_net import LogMel
from mculora.recipes import speech_augment as augment

SPEECH = Path(__file__).resolve().parents[1] / "assets" / "examples" / "happy_speech.wav"


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    samples, rate = sf.read(SPEECH, dtype="float32")
    assert rate == augment.RATE
    return samples


def band_energy_db(x: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    frequencies = np.fft.rfftfreq(x.size, 1 / augment.RATE)
    return 10 * np.log10(spectrum[(frequencies >= low) & (frequencies < high)].sum() + 1e-20)


def test_band_limit_removes_what_the_lower_rate_cannot_carry(speech):
    narrow = augment.band_limit(speech, 8_000)
    assert narrow.size == speech.size
    assert band_energy_db(speech, 4_200, 8_000) - band_energy_db(narrow, 4_200, 8_000) > 30
    assert abs(band_energy_db(speech, 300, 3_000) - band_energy_db(narrow, 300, 3_000)) < 1
    noise = np.random.default_rng(0).standard_normal(32_000).astype(np.float32) * 0.1  # energy at every frequency
    assert band_energy_db(noise, 4_000, 8_000) - band_energy_db(augment.band_limit(noise, 8_000), 4_000, 8_000) > 40


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_is_added_at_the_requested_snr(speech, snr, colour):
    noisy = augment.add_noise(speech, snr, colour, np.random.default_rng(0))
    noise = noisy - speech
    measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=0.1)


def test_pink_and_brown_noise_lean_to_low_frequencies():
    rng = np.random.default_rng(0)
    tilt = {
        colour: band_energy_db(noise, 50, 500) - band_energy_db(noise, 4_000, 7_500)
        for colour in ("white", "pink", "brown")
        for noise in [augment.coloured_noise(64_000, colour, rng)]
    }
    assert tilt["white"] < tilt["pink"] < tilt["brown"]


def test_reverberation_leaves_a_tail_that_grows_with_rt60(speech):
    burst = np.zeros(16_000, np.float32)
    burst[:800] = speech[8_000:8_800]  # 50 ms of speech, then silence
    tails = []
    for rt60 in (0.2, 0.8):
        wet = augment.reverberate(burst, rt60, np.random.default_rng(0))
        assert wet.size == burst.size and np.abs(wet).max() == pytest.approx(np.abs(burst).max(), rel=1e-5)
        tails.append(np.sqrt(np.mean(wet[4_000:8_000] ** 2)))  # 200-450 ms after the burst ended
    assert tails[0] < tails[1] and tails[1] > 1e-3


@pytest.mark.parametrize("codec, container, bitrate", [(c, f, b[0]) for c, f, b in augment.CODECS])
def test_codec_round_trips_keep_the_speech_and_lose_detail(speech, codec, container, bitrate):
    coded = augment.codec_round_trip(speech, codec, container, bitrate)
    assert abs(coded.size - speech.size) < 0.1 * augment.RATE  # the codec's delay and its last frame's padding
    log_mel = LogMel()
    before, after = log_mel(speech), log_mel(coded[: speech.size])
    frames = min(before.shape[1], after.shape[1])
    # Aligned by the codec's delay (at most 0.1 s), the spectrograms match closely but not exactly.
    best = max(
        np.corrcoef(before[:, : frames - shift].flatten(), after[:, shift:frames].flatten())[0, 1]
        for shift in range(11)
    )
    assert 0.8 < best < 0.9999


def test_the_chain_is_reproducible_prepared_and_varied(speech):
    conditions = augment.BrowserConditions()
    first = [conditions(speech, np.random.default_rng(3)) for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    rng = np.random.default_rng(0)
    copies = [conditions(speech, rng) for _ in range(6)]
    assert all(c.dtype == np.float32 and np.abs(c).max() <= 1.0 and c.size > 0.25 * augment.RATE for c in copies)
    assert len({c.size for c in copies}) > 1  # padding, codecs and trimming change lengths
    assert not any(np.array_equal(copies[0][: c.size], c) for c in copies[1:])
    clean = augment.BrowserConditions(0, 0, 0, 0, 0, 0)(speech, rng)
    from mculora.preprocess.audio import prepare_audio

    np.testing.assert_array_equal(clean, prepare_audio(speech, sample_rate=augment.RATE).samples)


def test_a_quiet_recording_is_never_turned_into_silence(speech):
    """The gain step stops at a peak of -40 dBFS, so no augmented copy is one the demo would refuse as silent."""
    quiet = speech * (0.02 / np.abs(speech).max())  # peak at -34 dBFS
    conditions = augment.BrowserConditions(gain=1.0, reverb=0, noise=0, band_limit=0, codec=0, padding=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert np.abs(conditions(quiet, rng)).max() >= 0.0099
