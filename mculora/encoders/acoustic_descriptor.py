"""Utterance-level acoustic descriptor: how something is said, from 16 kHz mono speech, without pretrained weights.

Every clip is analysed in frames 10 ms apart (25 ms Hann window for spectra and energy, 48 ms for pitch) and the
frame tracks are pooled into one fixed vector. Levels are in dB relative to digital full scale (a full-scale sine
is about -3 dBFS RMS), pitch is in semitones relative to 100 Hz, so every value stays within a few hundred.
No per-utterance standardisation is applied: training normalises the descriptor over the data set.

Layout (`BLOCKS`, in order; `AcousticDescriptor.dim` = 163):

============== ==== ==========================================================================================
block          size content
============== ==== ==========================================================================================
logmel_mean     40  mean over frames of the 40-band log-mel power (dB), bands 20 Hz-8 kHz, HTK mel scale
logmel_std      40  standard deviation over frames of the same
mfcc_mean       20  mean of MFCC 0-19 (orthonormal DCT-II of the 40 log-mel bands)
mfcc_std        20  standard deviation of MFCC 0-19
mfcc_delta_std  20  standard deviation of the MFCC deltas (5-frame regression); their mean telescopes to ~0,
                    so it carries no information and is left out
pitch            6  over voiced frames, F0 in semitones re 100 Hz: mean, std, 10th, 50th, 90th percentile, and
                    the mean absolute change between adjacent voiced frames (semitones per 10 ms). All zero when
                    fewer than 3 frames are voiced (then ``voiced_ratio`` is ~0 and tells the model so)
energy           6  frame RMS level (dBFS): mean, std, 10th, 50th, 90th percentile, mean absolute frame-to-frame
                    change (dB)
spectral         6  over active frames: spectral centroid mean and std (kHz); spectral flux, the mean absolute
                    log-mel change per band between frames, mean and std (dB); alpha ratio, the 1-5 kHz to
                    50 Hz-1 kHz energy ratio, mean and std (dB)
rhythm           5  voiced ratio (voiced / all frames), pause ratio (inactive / all frames), voiced segments per
                    second (a speaking-rate proxy), mean voiced-segment length (s), ln of the clip length (s)
============== ==== ==========================================================================================

A frame is *active* when its RMS is within `ACTIVE_DB` of the clip's loudest frame. Pitch comes from the
normalised autocorrelation (window-corrected as in Boersma 1993, interpolated to a quarter sample): the period is
the shortest-lag peak within `PEAK_RATIO` of the strongest, and a frame is *voiced* when it is active and that peak
exceeds `VOICING_THRESHOLD`. Every step is deterministic; there is no frame-to-frame path search.
Audio that came from an 8 kHz source has nothing above 4 kHz, so the upper log-mel bands, the MFCCs, the centroid
and the alpha ratio shift for it; pitch, energy, rhythm and the lower log-mel bands do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from mculora.encoders.base import Encoder
from mculora.modalities import Modality
from mculora.preprocess.audio import TARGET_SAMPLE_RATE, normalise_speech_level

SAMPLE_RATE = TARGET_SAMPLE_RATE  # the encoder reads what `prepare_audio` produces
HOP = 160  # 10 ms
WIN = 400  # 25 ms
N_FFT = 512
N_MELS = 40
F_MIN = 20.0
F_MAX = 8_000.0
N_MFCC = 20
F0_MIN = 65.0  # below a low male voice; creak under it is not pitch worth describing
F0_MAX = 500.0  # above high-arousal female speech
PITCH_WIN = 768  # 48 ms: three periods of F0_MIN, what an autocorrelation needs to see a period reliably
VOICING_THRESHOLD = 0.45  # Praat's default voicing threshold on the normalised autocorrelation peak
PEAK_RATIO = 0.9  # how close to the strongest peak the chosen (shortest-lag) peak must be
AC_OVERSAMPLE = 4  # autocorrelation lag grid: 1/4 sample
ACTIVE_DB = 30.0  # frames further below the loudest one are pauses or room tone
MIN_VOICED_FRAMES = 3  # fewer voiced frames than this make no contour worth summarising
PITCH_REF_HZ = 100.0
_LEVEL_FLOOR_DB = -100.0  # digital silence maps here instead of -inf

BLOCKS: tuple[tuple[str, int], ...] = (
    ("logmel_mean", N_MELS),
    ("logmel_std", N_MELS),
    ("mfcc_mean", N_MFCC),
    ("mfcc_std", N_MFCC),
    ("mfcc_delta_std", N_MFCC),
    ("pitch", 6),
    ("energy", 6),
    ("spectral", 6),
    ("rhythm", 5),
)


_WINDOW = torch.hann_window(WIN)


def power_spectrogram(waveform: torch.Tensor) -> torch.Tensor:
    """|STFT|^2 [N_FFT // 2 + 1, frames] of a float32 waveform (25 ms Hann window, 10 ms hop, centred frames): the
    one spectrogram the descriptor and the speech network's log-mel input are both made from."""
    spectrum = torch.stft(
        waveform, N_FFT, hop_length=HOP, win_length=WIN, window=_WINDOW, center=True, return_complex=True
    )
    return spectrum.abs().square()


def block_slices() -> dict[str, slice]:
    """Where each block of `BLOCKS` lies in the descriptor."""
    slices, start = {}, 0
    for name, size in BLOCKS:
        slices[name] = slice(start, start + size)
        start += size
    return slices


class AcousticDescriptor(Encoder):
    """Hand-built acoustic statistics (log-mel, MFCC, pitch, energy, spectral shape, rhythm) of one utterance."""

    modality = Modality.AUDIO
    dim = sum(size for _, size in BLOCKS)

    def __init__(self, level_normalised: bool = False) -> None:
        # v2 measures every clip after `normalise_speech_level`, so that its dB values (log-mel means, MFCC 0,
        # energy) describe the voice rather than the microphone's gain; v1 (older checkpoints) as recorded.
        self.level_normalised = level_normalised
        self.name = "acoustic-stats-v2" if level_normalised else "acoustic-stats-v1"
        # Dividing the power by the squared window sum puts a full-scale sine's spectral peak near -6 dB.
        self._power_scale = float(_WINDOW.sum()) ** 2
        self._mel_fb = AF.melscale_fbanks(N_FFT // 2 + 1, F_MIN, F_MAX, N_MELS, SAMPLE_RATE)  # [freqs, mels]
        self._dct = AF.create_dct(N_MFCC, N_MELS, "ortho")  # [mels, mfcc]
        self._freqs_khz = torch.linspace(0, SAMPLE_RATE / 2000, N_FFT // 2 + 1)
        self._alpha_low = (self._freqs_khz >= 0.05) & (self._freqs_khz < 1.0)
        self._alpha_high = (self._freqs_khz >= 1.0) & (self._freqs_khz < 5.0)
        self._pitch_window = torch.hann_window(PITCH_WIN, periodic=False)
        # Lags are searched on a grid of 1/AC_OVERSAMPLE sample, in units of that grid.
        self._min_lag = math.floor(SAMPLE_RATE / F0_MAX * AC_OVERSAMPLE)
        self._max_lag = math.ceil(SAMPLE_RATE / F0_MIN * AC_OVERSAMPLE)
        # Long enough that the circular autocorrelation does not wrap around onto the lags searched.
        self._ac_fft = 2 ** math.ceil(math.log2(PITCH_WIN + self._max_lag // AC_OVERSAMPLE + 2))
        # The window's own autocorrelation: dividing by it undoes the taper's decay with lag (Boersma 1993).
        self._window_ac = self._autocorrelation(self._pitch_window[None])[0]

    def encode(self, inputs: Sequence) -> torch.Tensor:
        """float32 16 kHz mono clips (as `prepare_audio` returns them) -> float32 [len(inputs), dim]."""
        with torch.inference_mode():
            rows = [self.describe(self.as_waveform(clip)) for clip in inputs]
        if not rows:
            return torch.zeros(0, self.dim)
        return torch.stack(rows)

    def as_waveform(self, clip: object) -> torch.Tensor:
        """A clip as a checked float32 waveform tensor (at the speech level, for v2)."""
        samples = np.asarray(clip, dtype=np.float32)
        if samples.ndim != 1 or samples.size < WIN:
            raise ValueError(f"expected mono 16 kHz audio of at least {WIN} samples, got shape {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError("audio contains NaN or infinite samples; run it through prepare_audio first")
        return torch.as_tensor(normalise_speech_level(samples) if self.level_normalised else samples)

    def describe(self, waveform: torch.Tensor, power: torch.Tensor | None = None) -> torch.Tensor:
        """The descriptor of one checked waveform; ``power``: its `power_spectrogram`, when already computed."""
        power = (power_spectrogram(waveform) if power is None else power) / self._power_scale  # [freqs, T]
        rms_db = self._frame_rms_db(waveform)  # [T]
        active = rms_db >= rms_db.max() - ACTIVE_DB
        log_mel = _to_db(self._mel_fb.T @ power)  # [mels, T]
        mfcc = self._dct.T @ log_mel  # [mfcc, T]
        deltas = AF.compute_deltas(mfcc)
        f0, voiced = self._pitch_track(waveform, active)
        duration_s = waveform.numel() / SAMPLE_RATE
        parts = [
            log_mel.mean(dim=1),
            log_mel.std(dim=1, correction=0),
            mfcc.mean(dim=1),
            mfcc.std(dim=1, correction=0),
            deltas.std(dim=1, correction=0),
            _pitch_stats(f0, voiced),
            _level_stats(rms_db),
            self._spectral_stats(power, log_mel, active),
            _rhythm_stats(voiced, active, duration_s),
        ]
        return torch.cat([part.float() for part in parts])

    def _frame_rms_db(self, waveform: torch.Tensor) -> torch.Tensor:
        # Same centres as the STFT frames (i * HOP), so every frame track lines up.
        frames = F.pad(waveform, (WIN // 2, WIN // 2)).unfold(0, WIN, HOP)
        return _to_db(frames.double().pow(2).mean(dim=1))

    def _autocorrelation(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised autocorrelation [frames, lags] up to just past the longest period, band-limited interpolated
        to 1/AC_OVERSAMPLE sample: at whole-sample lags the peak of a short period is undersampled, so a multiple
        of the period, landing closer to a sample, could look stronger than the period itself."""
        power = torch.fft.rfft(frames, n=self._ac_fft).abs() ** 2
        ac = torch.fft.irfft(power, n=self._ac_fft * AC_OVERSAMPLE)[:, : self._max_lag + 2]
        return ac / ac[:, :1].clamp_min(1e-30)  # 1 at lag 0, and 0 (not NaN) for a silent frame

    def _pitch_track(self, waveform: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F0 in Hz per frame and whether the frame is voiced; F0 is meaningless where unvoiced."""
        frames = F.pad(waveform, (PITCH_WIN // 2, PITCH_WIN // 2)).unfold(0, PITCH_WIN, HOP)[: active.numel()]
        frames = (frames - frames.mean(dim=1, keepdim=True)) * self._pitch_window
        ac = self._autocorrelation(frames) / self._window_ac
        inner = ac[:, self._min_lag : self._max_lag + 1]
        is_peak = (inner > ac[:, self._min_lag - 1 : self._max_lag]) & (
            inner >= ac[:, self._min_lag + 1 : self._max_lag + 2]
        )
        peaks = torch.where(is_peak, inner, torch.full_like(inner, -math.inf))
        # Multiples of the period correlate almost as well as the period itself, so take the shortest-lag peak
        # close to the strongest one rather than the strongest one.
        strong = is_peak & (peaks >= PEAK_RATIO * peaks.max(dim=1, keepdim=True).values)
        best = strong.to(torch.uint8).argmax(dim=1) + self._min_lag
        rows = torch.arange(ac.shape[0])
        left, peak, right = ac[rows, best - 1], ac[rows, best], ac[rows, best + 1]
        # A parabola through the peak and its neighbours puts the period between grid points.
        curvature = left - 2 * peak + right
        shift = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp_max(-1e-12), 0.0).clamp(-0.5, 0.5)
        f0 = SAMPLE_RATE * AC_OVERSAMPLE / (best + shift)
        voiced = active & strong.any(dim=1) & (peak > VOICING_THRESHOLD)
        return f0, voiced

    def _spectral_stats(self, power: torch.Tensor, log_mel: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        power = power[:, active].double()
        total = power.sum(dim=0).clamp_min(1e-20)
        centroid = (self._freqs_khz.double() @ power) / total
        alpha = _to_db(power[self._alpha_high].sum(dim=0)) - _to_db(power[self._alpha_low].sum(dim=0))
        # Flux needs a pair of frames; it is kept where the later frame of the pair is active.
        flux = (log_mel[:, 1:] - log_mel[:, :-1]).abs().mean(dim=0)[active[1:]]
        if flux.numel() == 0:
            flux = torch.zeros(1)
        return torch.stack([stat for values in (centroid, flux, alpha) for stat in _mean_std(values)])


def _to_db(power: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(power.clamp_min(10 ** (_LEVEL_FLOOR_DB / 10)))


def _mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return values.mean(), values.std(correction=0)


def _distribution(values: torch.Tensor) -> torch.Tensor:
    """Mean, std, 10th, 50th and 90th percentile."""
    quantiles = torch.quantile(values, torch.tensor([0.1, 0.5, 0.9], dtype=values.dtype))
    return torch.cat([torch.stack(_mean_std(values)), quantiles])


def _level_stats(db: torch.Tensor) -> torch.Tensor:
    change = (db[1:] - db[:-1]).abs().mean()
    return torch.cat([_distribution(db), change.reshape(1)])


def _pitch_stats(f0: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    if int(voiced.sum()) < MIN_VOICED_FRAMES:
        return torch.zeros(6)
    semitones = 12 * torch.log2(f0 / PITCH_REF_HZ)
    adjacent = voiced[1:] & voiced[:-1]
    steps = (semitones[1:] - semitones[:-1]).abs()[adjacent]
    change = steps.mean() if steps.numel() else torch.zeros((), dtype=semitones.dtype)
    return torch.cat([_distribution(semitones[voiced]), change.reshape(1)])


def _rhythm_stats(voiced: torch.Tensor, active: torch.Tensor, duration_s: float) -> torch.Tensor:
    n_frames = voiced.numel()
    n_voiced = int(voiced.sum())
    onsets = int(voiced[0]) + int((voiced[1:] & ~voiced[:-1]).sum())
    segment_s = n_voiced * HOP / SAMPLE_RATE / onsets if onsets else 0.0
    values = [
        n_voiced / n_frames,
        1.0 - float(active.sum()) / n_frames,
        onsets / duration_s,
        segment_s,
        math.log(duration_s),
    ]
    return torch.tensor(values, dtype=torch.float64)
