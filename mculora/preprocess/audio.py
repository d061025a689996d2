"""User audio -> float32 mono 16 kHz speech, trimmed of silence and capped in length.

`prepare_audio` is the one entry point. It takes what the demo and the command line hand over:

- gradio's ``(sample_rate, array)`` tuple (int16/int32/float, shape [n] or [n, channels]),
- a file path (anything libsndfile reads: wav, flac, ogg, mp3, ...),
- a bare array with ``sample_rate=``.

Steps: read at most the first `READ_SECONDS` (a file is decoded only that far, so a long upload costs no more than a
short one), scale to float32 in [-1, 1], downmix to mono, remove the DC offset, resample to 16 kHz, trim leading and
trailing silence (10 ms frames more than `TRIM_DB` below the loudest one, keeping a `TRIM_MARGIN_S` margin), and
keep at most the first `MAX_SECONDS`. Anything that cannot become usable speech raises `UnusableInput` with a reason
a person can read; no raw soundfile/torch exception escapes for bad input.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from pathlib import Path

import numpy as np
import soundfile as sf
import threadpoolctl
import torch
import torchaudio.functional as AF

from mculora.preprocess import UnusableInput

TARGET_SAMPLE_RATE = 16_000
# Longer recordings are cut to their first 30 s: the descriptor is utterance-level, and the demo should stay fast.
MAX_SECONDS = 30.0
# Only this much of the input is ever decoded: the cap plus as much again for leading silence to be trimmed.
READ_SECONDS = 2 * MAX_SECONDS
# Less than a quarter second of sound is too little to say anything about how someone speaks.
MIN_SECONDS = 0.25
# A peak below -60 dBFS is a muted or unplugged microphone, not quiet speech.
SILENCE_PEAK_DBFS = -60.0
# Rates outside this range are not audio recordings anyone makes (4 kHz barely carries telephone speech).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000

_TRIM_FRAME_S = 0.010
# Frames this far below the loudest one count as silence; 40 dB keeps soft onsets and breathy endings.
TRIM_DB = 40.0
# The level speech is brought to by `normalise_speech_level` (mean power of its loud frames), about an active speech
# level of broadcast audio: a quiet recording is raised, a hot one lowered, both a long way from clipping.
SPEECH_LEVEL_DBFS = -23.0
# Kept on each side of the detected sound so word onsets and decays are not clipped.
TRIM_MARGIN_S = 0.10
# Bounds the resampling kernel: every common rate (8, 11.025, 22.05, 44.1, 48, 96 kHz ...) is exact, and an odd
# rate such as 16,001 Hz is approximated to well under 0.1 % instead of building a kernel of 16,000 x 16,001 taps.
_MAX_RATIO_DENOMINATOR = 1000


@dataclass(frozen=True)
class PreparedAudio:
    """Speech ready for an audio encoder.

    ``trimmed_s`` is how much leading and trailing silence was removed; ``capped`` says the input ran past
    `READ_SECONDS` or its sound past `MAX_SECONDS`, and only its first part is kept (tell the user).
    """

    samples: np.ndarray  # float32 [n], mono, in [-1, 1], at TARGET_SAMPLE_RATE
    trimmed_s: float
    capped: bool

    @property
    def sample_rate(self) -> int:
        return TARGET_SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.samples.size / TARGET_SAMPLE_RATE


def prepare_audio(source: object, sample_rate: float | None = None) -> PreparedAudio:
    """Any supported audio source -> `PreparedAudio` at `TARGET_SAMPLE_RATE`; raises `UnusableInput`."""
    samples, rate, cut = _read_source(source, sample_rate)
    rate = _check_sample_rate(rate)
    if samples.size == 0:
        raise UnusableInput("the audio is empty")
    mono, cut_here = _to_float_mono(samples, read_limit=math.ceil(READ_SECONDS * rate))
    cut = cut or cut_here
    if mono.size < MIN_SECONDS * rate:
        raise UnusableInput(f"the audio is too short: {float(mono.size / rate):.2f} s, at least {MIN_SECONDS} s needed")
    if not np.isfinite(mono).all():
        raise UnusableInput("the audio contains invalid samples (NaN or infinity)")
    mono = mono - mono.mean(dtype=np.float64)  # a DC offset would hide silence from the energy measures
    peak = float(np.abs(mono).max())
    if peak < 10 ** (SILENCE_PEAK_DBFS / 20):
        raise UnusableInput(f"the audio is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS)")
    if peak > 1.0:
        # Float audio beyond full scale is unnormalised (e.g. int16 values stored as float); rescaling keeps its
        # shape where clipping would distort it.
        mono = mono / peak

    audio = _resample(mono.astype(np.float32), rate)
    first, last = _sound_span(audio)
    sound_s = (last - first) / TARGET_SAMPLE_RATE
    if sound_s < MIN_SECONDS:
        raise UnusableInput(f"the audio is too short: {sound_s:.2f} s of sound, at least {MIN_SECONDS} s needed")
    margin = int(TRIM_MARGIN_S * TARGET_SAMPLE_RATE)
    start, stop = max(0, first - margin), min(audio.size, last + margin)
    trimmed_s = (audio.size - (stop - start)) / TARGET_SAMPLE_RATE
    audio = audio[start:stop]
    max_samples = int(MAX_SECONDS * TARGET_SAMPLE_RATE)
    capped = cut or audio.size > max_samples
    audio = np.ascontiguousarray(audio[:max_samples], dtype=np.float32)
    return PreparedAudio(audio, trimmed_s, capped)


def _read_source(source: object, sample_rate: float | None) -> tuple[np.ndarray, object, bool]:
    """Split a source into its raw samples, claimed sample rate (not yet validated) and whether a file was read only
    up to `READ_SECONDS`."""
    if isinstance(source, str | Path):
        if sample_rate is not None:
            raise TypeError("sample_rate= is only for bare arrays; a file carries its own rate")
        return _read_file(Path(source))
    if isinstance(source, tuple):
        if sample_rate is not None:
            raise TypeError("sample_rate= is only for bare arrays; a (sample_rate, array) tuple carries its own")
        if len(source) != 2:
            raise UnusableInput("audio tuples must be (sample_rate, samples)")
        rate, samples = source
        return _as_array(samples), rate, False
    if source is None:
        raise UnusableInput("no audio was given")
    if sample_rate is None:
        raise TypeError("a bare audio array needs sample_rate=")
    return _as_array(source), sample_rate, False


def _read_file(path: Path) -> tuple[np.ndarray, int, bool]:
    if not path.is_file():
        raise UnusableInput(f"could not read audio file {path.name}: no such file")
    try:
        with sf.SoundFile(path) as audio:
            rate = _check_sample_rate(audio.samplerate)
            limit = math.ceil(READ_SECONDS * rate)
            # Decode only the frames that can be used; one more tells whether the file goes on.
            samples = audio.read(limit + 1, dtype="float32", always_2d=True)
    except (sf.SoundFileError, OSError, RuntimeError) as error:
        reason = getattr(error, "error_string", None) or str(error)
        raise UnusableInput(f"could not read audio file {path.name}: {reason}") from error
    return samples[:limit], int(rate), len(samples) > limit


def _as_array(samples: object) -> np.ndarray:
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise UnusableInput(f"the audio samples are not a numeric array: {error}") from error
    if array.dtype.kind not in "iuf":
        raise UnusableInput(f"the audio samples are not numeric (dtype {array.dtype})")
    return array


def _check_sample_rate(rate: object) -> Fraction:
    # bool is a Real too, but True Hz is a caller's mix-up, not a rate.
    if isinstance(rate, bool) or not isinstance(rate, Real) or not math.isfinite(rate):
        raise UnusableInput(f"bad sample rate {rate!r}: expected a number of Hz")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnusableInput(f"bad sample rate {rate} Hz: expected {MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz")
    return Fraction(float(rate))


def _to_float_mono(samples: np.ndarray, read_limit: int) -> tuple[np.ndarray, bool]:
    """Integer PCM or float, [n] or [n, channels] -> float64 [min(n, read_limit)] (float64 so the mean and downmix
    stay exact), and whether samples past ``read_limit`` were left out."""
    if samples.ndim == 2 and samples.shape[0] <= 8 < samples.shape[1]:
        samples = samples.T  # channels-first ([channels, n], torch's layout); real recordings have > 8 samples
    if samples.ndim not in (1, 2):
        raise UnusableInput(f"audio must be [samples] or [samples, channels], got shape {samples.shape}")
    cut = len(samples) > read_limit
    samples = samples[:read_limit]
    if samples.dtype.kind == "u":
        half = 2 ** (8 * samples.dtype.itemsize - 1)
        values = (samples.astype(np.float64) - half) / half
    elif samples.dtype.kind == "i":
        values = samples.astype(np.float64) / 2 ** (8 * samples.dtype.itemsize - 1)
    else:
        values = samples.astype(np.float64)
    return (values.mean(axis=1) if values.ndim == 2 else values), cut


@functools.cache
def _thread_pools() -> threadpoolctl.ThreadpoolController:
    return threadpoolctl.ThreadpoolController()


@contextlib.contextmanager
def without_thread_team() -> Iterator[None]:
    """torch's kernels inside run on the calling thread alone. A thread that runs a parallel kernel gets an OpenMP
    team of its own, kept while the thread lives, and once libgomp manages more team threads than there are CPUs
    every team's workers sleep between kernels: after 8 of a server's request threads had each resampled one upload,
    the encoders on the torch thread took 66 ms instead of 25 (`mculora.serving.torch_thread`)."""
    torch.get_num_threads()  # torch sizes a thread's team on its first use; let it do so first, or it undoes the limit
    with _thread_pools().limit(limits=1, user_api="openmp"):
        yield


def _resample(audio: np.ndarray, rate: Fraction) -> np.ndarray:
    ratio = (TARGET_SAMPLE_RATE / rate).limit_denominator(_MAX_RATIO_DENOMINATOR)
    if ratio == 1:
        return audio
    # Decoding runs on a server's request threads (`mculora.encoders.featurize`), so it must not start a team.
    with without_thread_team():
        waveform = AF.resample(torch.from_numpy(audio), orig_freq=ratio.denominator, new_freq=ratio.numerator)
    return waveform.numpy()


FRAME_SAMPLES = int(_TRIM_FRAME_S * TARGET_SAMPLE_RATE)


def _frame_power(audio: np.ndarray) -> np.ndarray:
    """Mean power per 10 ms frame of 16 kHz ``audio`` (the last one zero-padded)."""
    n_frames = math.ceil(audio.size / FRAME_SAMPLES)
    padded = np.zeros(n_frames * FRAME_SAMPLES, dtype=np.float64)
    padded[: audio.size] = audio
    return np.mean(padded.reshape(n_frames, FRAME_SAMPLES) ** 2, axis=1)


def loud_frames(audio: np.ndarray) -> np.ndarray:
    """Bool per 10 ms frame of 16 kHz ``audio`` (the last one zero-padded): its mean power is within `TRIM_DB` of
    the loudest frame's."""
    energy = _frame_power(audio)
    return energy >= energy.max() * 10 ** (-TRIM_DB / 10)


def normalise_speech_level(audio: np.ndarray, level_dbfs: float = SPEECH_LEVEL_DBFS) -> np.ndarray:
    """``audio`` scaled so that the mean power of its loud frames (`loud_frames`) is ``level_dbfs``: the same voice
    through a quiet laptop microphone and a close studio one then gives the same levels. Float samples may exceed
    1.0 afterwards; nothing downstream clips them."""
    energy = _frame_power(audio)
    level = float(np.mean(energy[energy >= energy.max() * 10 ** (-TRIM_DB / 10)]))
    if level <= 0.0:
        return audio
    return (audio * np.sqrt(10 ** (level_dbfs / 10) / level)).astype(audio.dtype)


def _sound_span(audio: np.ndarray) -> tuple[int, int]:
    """[first, last) sample of the frames within `TRIM_DB` of the loudest frame (there is always one)."""
    loud = np.flatnonzero(loud_frames(audio))
    return int(loud[0]) * FRAME_SAMPLES, min(audio.size, (int(loud[-1]) + 1) * FRAME_SAMPLES)
