"""Audio preprocessing and the acoustic descriptor, on real speech (RAVDESS, EmoDB) and on generated signals."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from real_data import data_missing

from mculora.encoders import acoustic_descriptor as acoustic
from mculora.encoders.acoustic_descriptor import BLOCKS, AcousticDescriptor, block_slices
from mculora.modalities import Modality
from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import MAX_SECONDS, READ_SECONDS, TARGET_SAMPLE_RATE, prepare_audio

SLICES = block_slices()
RNG_SEED = 0


@pytest.fixture(scope="module")
def encoder() -> AcousticDescriptor:
    return AcousticDescriptor()


def _dataset(shared_data: Path, name: str) -> Path:
    root = shared_data / name
    if not (root / "labels.csv").is_file():
        data_missing(f"{name} not found under {shared_data}")
    return root


@pytest.fixture(scope="module")
def ravdess(shared_data: Path) -> Path:
    return _dataset(shared_data, "ravdess_speech")


@pytest.fixture(scope="module")
def emodb(shared_data: Path) -> Path:
    return _dataset(shared_data, "emodb")


@pytest.fixture(scope="module")
def ravdess_set(ravdess: Path, encoder: AcousticDescriptor) -> dict:
    """Descriptors of 210 clips: actors 1-14, one sentence, first repetition, every emotion and intensity."""
    with open(ravdess / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["statement"] == "1" and r["repetition"] == "1"]
    rows = [r for r in rows if int(r["actor"]) <= 14]
    features = encoder.encode([prepare_audio(ravdess / r["path"]).samples for r in rows]).numpy()
    return {
        "rows": rows,
        "x": features,
        "emotion": np.array([r["emotion"] for r in rows]),
        "actor": np.array([int(r["actor"]) for r in rows]),
        # How much each feature varies between utterances: the yardstick for "the same descriptor" below.
        "scale": features.std(axis=0),
    }


def _describe(encoder: AcousticDescriptor, source, **kwargs) -> np.ndarray:
    return encoder.encode([prepare_audio(source, **kwargs).samples])[0].numpy()


def _tone(seconds: float, hz: float = 220.0, rate: int = TARGET_SAMPLE_RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


# --- the descriptor -----------------------------------------------------------------------------------------------


def test_encoder_identity_and_layout(encoder):
    assert encoder.modality is Modality.AUDIO
    assert encoder.name == "acoustic-stats-v1"
    assert encoder.dim == 163 == sum(size for _, size in BLOCKS)
    assert encoder.spec() == {"name": "acoustic-stats-v1", "dim": 163}
    assert list(SLICES) == [name for name, _ in BLOCKS] and SLICES["rhythm"].stop == 163


def test_real_clip_is_finite_and_deterministic(encoder, ravdess):
    clip = prepare_audio(ravdess / "audio/Actor_02/03-01-05-02-01-01-02.flac").samples
    other = prepare_audio(ravdess / "audio/Actor_03/03-01-04-01-02-01-03.flac").samples
    batch = encoder.encode([clip, other])
    assert batch.shape == (2, 163) and batch.dtype == torch.float32
    assert torch.isfinite(batch).all()
    assert torch.equal(encoder.encode([clip, other]), batch)
    assert torch.equal(encoder.encode([clip])[0], batch[0])  # a clip's row does not depend on its batch


@pytest.mark.parametrize("kind", ["zeros", "white noise", "tone", "one window"])
def test_any_valid_input_gives_finite_features(encoder, kind):
    rng = np.random.default_rng(RNG_SEED)
    clip = {
        "zeros": np.zeros(16_000, np.float32),
        "white noise": (0.1 * rng.standard_normal(16_000)).astype(np.float32),
        "tone": _tone(1.0),
        "one window": _tone(acoustic.WIN / TARGET_SAMPLE_RATE),
    }[kind]
    features = encoder.encode([clip])[0]
    assert torch.isfinite(features).all()
    voiced_ratio = float(features[SLICES["rhythm"]][0])
    if kind in ("zeros", "white noise"):
        assert voiced_ratio < 0.05
    if kind == "zeros":
        assert torch.equal(features[SLICES["pitch"]], torch.zeros(6))  # unvoiced: documented zeros, not NaN


@pytest.mark.parametrize("hz", [90.0, 150.0, 300.0, 450.0])
def test_pitch_of_a_harmonic_signal(encoder, hz):
    # A sawtooth has every harmonic, the case where period multiples compete with the period itself.
    t = np.arange(TARGET_SAMPLE_RATE) / TARGET_SAMPLE_RATE
    saw = (0.3 * (2 * ((hz * t) % 1.0) - 1)).astype(np.float32)
    pitch = encoder.encode([saw])[0][SLICES["pitch"]]
    expected = 12 * np.log2(hz / acoustic.PITCH_REF_HZ)
    assert abs(float(pitch[3]) - expected) < 0.1  # median, semitones
    assert float(pitch[1]) < 0.1  # a steady tone has a flat contour


def test_encoder_rejects_what_preprocessing_would_have_caught(encoder):
    with pytest.raises(ValueError, match="NaN"):
        encoder.encode([np.full(16_000, np.nan, np.float32)])
    with pytest.raises(ValueError, match="mono"):
        encoder.encode([np.zeros((2, 16_000), np.float32)])


# --- the same speech, delivered differently -----------------------------------------------------------------------


def _variant_clips(ravdess_set: dict, ravdess: Path) -> list[tuple[np.ndarray, int]]:
    """Six strong-intensity clips of different actors and emotions, at their native 48 kHz."""
    rows = [r for r in ravdess_set["rows"] if r["intensity"] == "2"][::12][:6]
    return [sf.read(ravdess / r["path"], dtype="float32") for r in rows]


def test_same_clip_in_any_container_gives_the_same_descriptor(encoder, ravdess_set, ravdess):
    for samples, rate in _variant_clips(ravdess_set, ravdess)[:3]:
        reference = _describe(encoder, samples, sample_rate=rate)
        pcm16 = np.round(samples * 32768).astype(np.int16)  # the FLAC holds 16-bit PCM, so this is lossless
        variants = {
            "int16 tuple": (rate, pcm16),
            "int32 tuple": (rate, pcm16.astype(np.int32) << 16),
            "stereo int16 tuple": (rate, np.stack([pcm16, pcm16], axis=1)),
            "channels-first float": (rate, np.stack([samples, samples])),
        }
        for name, source in variants.items():
            np.testing.assert_allclose(_describe(encoder, source), reference, rtol=1e-5, atol=1e-4, err_msg=name)


def _z(descriptor: np.ndarray, reference: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Difference in units of the feature's spread between utterances (0.1 = a tenth of a typical difference)."""
    return np.abs(descriptor - reference) / np.maximum(scale, 1e-6)


def test_22khz_source_matches_48khz(encoder, ravdess_set, ravdess):
    # 22.05 kHz keeps everything up to 11 kHz, i.e. the whole 0-8 kHz band the descriptor sees; the residue is
    # resampler ripple near 8 kHz (measured at most 0.011 of the between-utterance spread).
    for samples, rate in _variant_clips(ravdess_set, ravdess):
        reference = _describe(encoder, samples, sample_rate=rate)
        resampled = AF.resample(torch.from_numpy(samples), rate, 22_050).numpy()
        z = _z(_describe(encoder, resampled, sample_rate=22_050), reference, ravdess_set["scale"])
        assert z.max() < 0.05, f"largest change {z.max():.3f} at feature {z.argmax()}"


def _bands_below(hz: float) -> np.ndarray:
    weights = AF.melscale_fbanks(acoustic.N_FFT // 2 + 1, acoustic.F_MIN, acoustic.F_MAX, acoustic.N_MELS, 16_000)
    freqs = torch.linspace(0, 8_000, acoustic.N_FFT // 2 + 1)
    top = torch.stack([freqs[weights[:, band] > 0].max() for band in range(acoustic.N_MELS)])
    return np.flatnonzero((top < hz).numpy())


def test_8khz_source_keeps_the_blocks_below_4khz(encoder, ravdess_set, ravdess):
    # An 8 kHz source has nothing above 4 kHz (3.96 kHz after the resampler's roll-off). Bands above that, and the
    # features that mix in all bands (MFCCs, centroid, alpha ratio, flux), change by design. Pitch, energy, rhythm
    # and the log-mel bands entirely below 3.6 kHz must survive. Not exactly: when a clip's first or last sound is
    # a fricative that lives above 4 kHz, trimming keeps less of it, which shifts the clip's statistics a little.
    # Hence a pooled bound: the typical (median) change must be negligible and 90 % of changes small.
    low = _bands_below(3_600)
    high = np.setdiff1d(np.arange(acoustic.N_MELS), _bands_below(4_100))
    kept = np.concatenate(
        [
            SLICES["logmel_mean"].start + low,
            SLICES["logmel_std"].start + low,
            np.arange(SLICES["pitch"].start, SLICES["energy"].stop),
            np.arange(SLICES["rhythm"].start, SLICES["rhythm"].stop),
        ]
    )
    kept_z, lost_z = [], []
    for samples, rate in _variant_clips(ravdess_set, ravdess):
        reference = _describe(encoder, samples, sample_rate=rate)
        narrow = AF.resample(torch.from_numpy(samples), rate, 8_000).numpy()
        z = _z(_describe(encoder, narrow, sample_rate=8_000), reference, ravdess_set["scale"])
        kept_z.append(z[kept])
        lost_z.append(z[SLICES["logmel_mean"].start + high])
    kept_z, lost_z = np.concatenate(kept_z), np.concatenate(lost_z)
    assert np.median(kept_z) < 0.05 and np.percentile(kept_z, 90) < 0.5
    # The comparison is not vacuous: the upper bands really did lose their content.
    assert np.median(lost_z) > 1.0


# --- files --------------------------------------------------------------------------------------------------------


def test_flac_path(encoder, ravdess):
    path = ravdess / "audio/Actor_01/03-01-05-02-01-01-01.flac"
    prepared = prepare_audio(path)
    assert prepared.sample_rate == TARGET_SAMPLE_RATE and prepared.samples.dtype == np.float32
    assert prepared.samples.ndim == 1 and not prepared.capped
    # RAVDESS clips start and end with about a second of room tone; trimming removes most of it.
    assert prepared.trimmed_s > 0.5 and 1.0 < prepared.duration_s < 3.5
    pcm, rate = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(prepare_audio((rate, pcm)).samples, prepared.samples)


def test_wav_path(encoder, emodb):
    path = emodb / "wav/03a01Wa.wav"
    prepared = prepare_audio(path)
    assert prepared.sample_rate == TARGET_SAMPLE_RATE and 0.25 <= prepared.duration_s <= 2.0
    pcm, rate = sf.read(path, dtype="int16")
    assert rate == 22_050
    np.testing.assert_array_equal(prepare_audio((rate, pcm)).samples, prepared.samples)
    assert torch.isfinite(encoder.encode([prepared.samples])).all()


def test_ogg_path(encoder, ravdess, tmp_path):
    source = ravdess / "audio/Actor_04/03-01-03-02-01-01-04.flac"
    samples, rate = sf.read(source, dtype="float32")
    ogg = tmp_path / "clip.ogg"
    sf.write(ogg, samples, rate, format="OGG", subtype="VORBIS")
    lossless, lossy = prepare_audio(source), prepare_audio(ogg)
    assert abs(lossy.duration_s - lossless.duration_s) < 0.1
    # Vorbis is lossy, so only the coarse prosody is compared: median pitch and mean level.
    a, b = encoder.encode([lossless.samples, lossy.samples])
    assert abs(float(a[SLICES["pitch"]][3] - b[SLICES["pitch"]][3])) < 0.3  # semitones
    assert abs(float(a[SLICES["energy"]][0] - b[SLICES["energy"]][0])) < 1.5  # dB


def test_unreadable_files(tmp_path):
    garbage = tmp_path / "voice.wav"
    garbage.write_bytes(b"this is not audio" * 100)
    with pytest.raises(UnusableInput, match="could not read audio file voice.wav: "):
        prepare_audio(garbage)
    with pytest.raises(UnusableInput, match="could not read audio file missing.flac: no such file"):
        prepare_audio(tmp_path / "missing.flac")


# --- errors, trimming and the length cap --------------------------------------------------------------------------


def _error_cases() -> dict[str, tuple[object, dict, str]]:
    rng = np.random.default_rng(RNG_SEED)
    with_nan = _tone(1.0)
    with_nan[100] = np.nan
    with_inf = _tone(1.0)
    with_inf[100] = np.inf
    short = np.zeros(16_000, np.float32)
    short[8_000:9_600] = _tone(0.1)
    rate = {"sample_rate": 16_000}
    return {
        "silent": ((1e-4 * rng.standard_normal(16_000)).astype(np.float32), rate, "silent"),
        "all zero int16": ((48_000, np.zeros(48_000, np.int16)), {}, "silent"),
        "constant (DC only)": (np.full(16_000, 0.5, np.float32), rate, "silent"),
        "NaN": (with_nan, rate, "NaN"),
        "inf": (with_inf, rate, "infinity"),
        "empty": (np.zeros(0, np.float32), rate, "empty"),
        "empty stereo": ((44_100, np.zeros((0, 2), np.int16)), {}, "empty"),
        "too short": (short, rate, "too short: 0.10 s"),
        "zero rate": ((0, _tone(1.0)), {}, "bad sample rate"),
        "negative rate": ((-16_000, _tone(1.0)), {}, "bad sample rate"),
        "NaN rate": ((float("nan"), _tone(1.0)), {}, "bad sample rate"),
        "text rate": (("16k", _tone(1.0)), {}, "bad sample rate"),
        "absurd rate": ((10**7, _tone(1.0)), {}, "bad sample rate"),
        "3-D array": (np.zeros((10, 2, 2), np.float32), rate, "shape"),
        "text samples": (np.array(["a", "b"]), rate, "not numeric"),
        "None": (None, {}, "no audio"),
    }


@pytest.mark.parametrize("case", list(_error_cases()))
def test_unusable_audio_has_a_reason(case):
    source, kwargs, reason = _error_cases()[case]
    with pytest.raises(UnusableInput, match=reason):
        prepare_audio(source, **kwargs)


def test_trims_silence_with_a_margin():
    clip = np.concatenate([np.zeros(16_000), _tone(1.0), np.zeros(16_000)]).astype(np.float32)
    prepared = prepare_audio(clip, sample_rate=16_000)
    assert prepared.duration_s == pytest.approx(1.2, abs=0.02)  # 1 s of tone + 0.1 s margin on each side
    assert prepared.trimmed_s == pytest.approx(1.8, abs=0.02)
    assert not prepared.capped


def test_odd_sample_rate_is_resampled():
    prepared = prepare_audio((16_001, _tone(1.0, rate=16_001)))
    assert prepared.duration_s == pytest.approx(1.0, abs=0.01)


def test_long_audio_is_capped_and_flagged(encoder):
    rng = np.random.default_rng(RNG_SEED)
    seconds = 35.0
    clip = _tone(seconds, rate=22_050) + (0.01 * rng.standard_normal(int(seconds * 22_050))).astype(np.float32)
    prepared = prepare_audio((22_050, clip))
    assert prepared.capped
    assert prepared.duration_s == MAX_SECONDS and prepared.samples.size == MAX_SECONDS * TARGET_SAMPLE_RATE
    assert torch.isfinite(encoder.encode([prepared.samples])).all()
    assert not prepare_audio((22_050, clip[: 10 * 22_050])).capped


def test_a_long_file_is_decoded_only_up_to_the_read_limit(tmp_path, monkeypatch):
    # Ten minutes of 16-bit speech-band noise whose second half is loud: none of it may be read.
    rate = 16_000
    rng = np.random.default_rng(RNG_SEED)
    samples = (0.1 * rng.standard_normal(600 * rate)).astype(np.float32)
    samples[300 * rate :] = 0.9
    path = tmp_path / "ten_minutes.wav"
    sf.write(path, samples, rate, subtype="PCM_16")
    frames_read = []
    original = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        data = original(self, frames, *args, **kwargs)
        frames_read.append(len(data))
        return data

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    prepared = prepare_audio(path)
    assert sum(frames_read) <= READ_SECONDS * rate + 1
    assert prepared.capped and prepared.duration_s == MAX_SECONDS
    assert np.abs(prepared.samples).max() < 0.9  # the loud second half was never decoded


def test_wrong_call_is_a_programming_error(tmp_path):
    with pytest.raises(TypeError, match="sample_rate"):
        prepare_audio(_tone(1.0))
    with pytest.raises(TypeError, match="sample_rate"):
        prepare_audio((16_000, _tone(1.0)), sample_rate=16_000)


# --- the descriptor carries emotion -------------------------------------------------------------------------------


def test_high_arousal_speech_is_louder_and_higher(ravdess_set):
    x, emotion, actor = ravdess_set["x"], ravdess_set["emotion"], ravdess_set["actor"]
    high = np.isin(emotion, ["angry", "happy"])
    low = np.isin(emotion, ["sad", "calm", "neutral"])
    level, pitch = SLICES["energy"].start, SLICES["pitch"].start  # mean frame level (dBFS), mean F0 (semitones)
    louder = higher = 0
    actors = np.unique(actor)
    for a in actors:
        mine = actor == a
        louder += x[mine & high, level].mean() > x[mine & low, level].mean()
        higher += x[mine & high, pitch].mean() > x[mine & low, pitch].mean()
    # Measured: all 14 actors, by 10-27 dB and 0.5-9 semitones.
    assert louder == len(actors)
    assert higher >= len(actors) - 2


def test_emotion_is_predictable_across_speakers(ravdess_set):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, emotion, actor = ravdess_set["x"], ravdess_set["emotion"], ravdess_set["actor"]
    train = actor <= 10  # 150 clips; tested on 4 unseen actors (60 clips)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    model.fit(x[train], emotion[train])
    accuracy = model.score(x[~train], emotion[~train])
    # Chance is 1/8; measured 0.45.
    assert accuracy >= 0.3, accuracy


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_resampling_on_a_request_thread_starts_no_thread_team():
    """A server decodes uploads on its request threads; a torch kernel there would give each one an OpenMP team, and
    past as many team threads as CPUs every team sleeps between kernels (the torch thread's encoders took 2-3x as
    long). Resampling a 48 kHz upload must start no thread."""
    if torch.get_num_threads() < 2:
        pytest.skip("torch runs one thread here: no team to start")
    clip = _tone(4.0, rate=48_000)
    counts, results = [], []

    def request_thread():
        counts.append(len(list(Path("/proc/self/task").iterdir())))
        results.append(prepare_audio((48_000, clip)))
        counts.append(len(list(Path("/proc/self/task").iterdir())))

    worker = threading.Thread(target=request_thread)
    worker.start()
    worker.join()
    assert counts[1] == counts[0], "resampling started threads on the request thread"
    assert results[0].duration_s == pytest.approx(4.0, abs=0.05)
