"""Speech as browsers and phones deliver it: waveform augmentations for training the speech network.

An acted corpus is studio audio: full band, no noise, no room, no codec. A laptop microphone through a browser adds
all of those, and a network that never heard them reads them as emotion (a lossy codec's smeared highs, a room's
tail). `BrowserConditions` draws, per clip, a chain of what a real recording goes through, each step with its own
probability, on 16 kHz mono float32 speech:

* gain from -20 to +10 dB, then clipping at full scale (a hot microphone);
* room reverberation: an exponentially decaying noise impulse response, RT60 0.2-0.8 s, mixed with the direct path;
* background noise at 0-20 dB SNR (white, pink or brown: spectra from hiss to rumble);
* a narrower band: 8 kHz sampling (telephone, Bluetooth headsets) or 11.025 kHz, and back to 16 kHz;
* a lossy codec round trip at a low bitrate: Opus 12-24 kbit/s (WebRTC, WebM recordings), AAC 24-32 kbit/s (phones,
  MP4), MP3 32 kbit/s, through PyAV's own FFmpeg;
* up to 1 s of low-level noise before and after (the recording started early, stopped late).

The chain ends with `prepare_audio`, exactly as the demo's input does (trimming, DC removal, the length cap), so
the network is trained on what it will be served. Every draw comes from the numpy generator it is given.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
import torch
import torchaudio.functional as AF
from scipy.signal import fftconvolve

from mculora.preprocess.audio import TARGET_SAMPLE_RATE, prepare_audio

RATE = TARGET_SAMPLE_RATE
CODECS = (("libopus", "ogg", (12_000, 16_000, 24_000)), ("aac", "adts", (24_000, 32_000)), ("mp3", "mp3", (32_000,)))


@dataclass(frozen=True)
class BrowserConditions:
    """Probabilities of each step (see the module docstring)."""

    gain: float = 0.7
    reverb: float = 0.4
    noise: float = 0.6
    band_limit: float = 0.3
    codec: float = 0.5
    padding: float = 0.3

    def __call__(self, speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One augmented copy of ``speech`` (float32 16 kHz mono), prepared as the demo prepares input."""
        x = np.asarray(speech, dtype=np.float32)
        if rng.random() < self.reverb:
            x = reverberate(x, rng.uniform(0.2, 0.8), rng)
        if rng.random() < self.noise:
            x = add_noise(x, rng.uniform(0.0, 20.0), rng.choice(["white", "pink", "brown"]), rng)
        if rng.random() < self.band_limit:
            x = band_limit(x, int(rng.choice([8_000, 11_025])))
        if rng.random() < self.padding:
            x = pad_with_noise(x, rng.uniform(0, 1.0), rng.uniform(0, 1.0), rng)
        if rng.random() < self.gain:
            # Quieter than -40 dBFS at its peak is a muted microphone, which the demo refuses rather than scores.
            gain = max(10 ** (rng.uniform(-20, 10) / 20), 0.01 / max(float(np.abs(x).max()), 1e-9))
            x = np.clip(x * gain, -1.0, 1.0)
        if rng.random() < self.codec:
            codec, container, bitrates = CODECS[rng.integers(len(CODECS))]
            x = codec_round_trip(x, codec, container, int(rng.choice(bitrates)))
        return prepare_audio(x, sample_rate=RATE).samples


def reverberate(x: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` in a room whose reverberation decays by 60 dB in ``rt60`` seconds (direct path kept, level kept)."""
    t = np.arange(int(rt60 * RATE)) / RATE
    response = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # ln(1000) = 6.9: -60 dB at rt60
    response[0] = 0.0
    response *= 0.5 / np.sqrt(np.sum(response**2))  # the tail at about -6 dB against the direct sound
    response[0] = 1.0
    wet = fftconvolve(x, response)[: x.size]
    return (wet * np.abs(x).max() / max(np.abs(wet).max(), 1e-9)).astype(np.float32)


def coloured_noise(size: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f^0 (white), 1/f (pink) or 1/f^2 (brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(size))
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]
    frequencies = np.maximum(np.fft.rfftfreq(size, 1 / RATE), 20.0)
    noise = np.fft.irfft(spectrum / frequencies**exponent, n=size)
    return (noise / max(np.sqrt(np.mean(noise**2)), 1e-12)).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``x`` plus noise ``snr_db`` below its RMS."""
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    return (x + coloured_noise(x.size, colour, rng) * rms * 10 ** (-snr_db / 20)).astype(np.float32)


def band_limit(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` sampled at ``rate`` and back. The anti-aliasing filter is steep and rolls off at 85 % of rate / 2
    (3.4 kHz at 8 kHz, a telephone's band): nothing above rate / 2 survives."""
    steep = {"lowpass_filter_width": 16, "rolloff": 0.85}  # on the way back too, or images of the band reappear
    low = AF.resample(torch.from_numpy(x), RATE, rate, **steep)
    return AF.resample(low, rate, RATE, **steep).numpy()[: x.size]


def pad_with_noise(x: np.ndarray, before_s: float, after_s: float, rng: np.random.Generator) -> np.ndarray:
    """Room tone (white noise 50 dB below the speech's peak) before and after ``x``."""
    level = np.abs(x).max() * 10 ** (-50 / 20)
    pad = [rng.standard_normal(int(s * RATE)).astype(np.float32) * level for s in (before_s, after_s)]
    return np.concatenate([pad[0], x, pad[1]])


def codec_round_trip(x: np.ndarray, codec: str, container: str, bitrate: int) -> np.ndarray:
    """``x`` encoded with ``codec`` at ``bitrate`` bit/s in memory and decoded again at 16 kHz (the codec's delay
    and frame padding are left in, as a decoder delivers them)."""
    buffer = io.BytesIO()
    # Opus runs at 48 kHz; the others take 16 kHz as it is.
    rate = 48_000 if codec == "libopus" else RATE
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout, stream.bit_rate = "mono", bitrate
        frame = av.AudioFrame.from_ndarray(np.clip(x, -1, 1)[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        for packet in stream.encode(frame):
            output.mux(packet)
        output.mux(stream.encode(None))
    buffer.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    chunks = []
    with av.open(buffer, mode="r", format=container) as decoded:
        for packet_frame in decoded.decode(audio=0):
            chunks += [f.to_ndarray()[0] for f in resampler.resample(packet_frame)]
    chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros_like(x)
