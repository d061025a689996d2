"""A compact speech-emotion CNN over log-mel spectrograms, and the audio encoder that joins its embedding to the
acoustic descriptor.

The network is trained on the training actors and speakers of RAVDESS and EmoDB by `mculora.recipes.speech`; its
weights travel inside each checkpoint that uses it (``speech_net.safetensors``, next to ``model.safetensors``) and
the encoder's name carries a digest of them, so a checkpoint refuses features computed with any other network.

Input: 64-band log-mel power (dB, 25 ms Hann windows every 10 ms, 20 Hz-8 kHz) of the 16 kHz speech that
`prepare_audio` returns, standardised over the whole utterance (so recording level does not matter, while the
relative loudness of bands and moments does). The network averages frame pairs (20 ms steps), runs four stages of
two 3x3 conv-BN-ReLU layers with 2x2 max-pooling between them, averages over frequency, and pools over time by
mean and max: an utterance of any length gives one 256-d embedding.

Embedding layout (`SpeechEmotionEncoder.dim` = 163 + 256 + 7 = 426): the acoustic descriptor
(`mculora.encoders.acoustic_descriptor`), the network's pooled features, then its 7 Ekman logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from mculora.dropout import Dropout
from mculora.encoders.acoustic_descriptor import F_MAX, F_MIN, N_FFT, SAMPLE_RATE, AcousticDescriptor, power_spectrogram
from mculora.encoders.base import Encoder, EncoderUnavailable, weights_digest
from mculora.encoders.conv import vgg_layers
from mculora.modalities import Modality

N_MELS = 64
WIDTHS = (16, 32, 64, 128)  # channels of the four stages; 0.29 M parameters
NUM_CLASSES = 7  # Ekman-7, in `mculora.recipes.sources.EKMAN` order
WEIGHTS_FILE = "speech_net.safetensors"
MIN_FRAMES = 16  # three 2x poolings after the 2x frame averaging need this many frames (about 0.16 s)
MIN_STD_DB = 1.0  # a near-constant spectrogram (a tone, silence) is not blown up by standardisation


class LogMel:
    """float32 16 kHz mono waveform -> float32 [N_MELS, frames] log-mel power in dB."""

    def __init__(self) -> None:
        self._fbank = AF.melscale_fbanks(N_FFT // 2 + 1, F_MIN, F_MAX, N_MELS, SAMPLE_RATE).T.contiguous()

    def __call__(self, waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.from_power(power_spectrogram(torch.as_tensor(waveform, dtype=torch.float32)))

    def from_power(self, power: torch.Tensor) -> torch.Tensor:
        """The log-mel spectrogram from an already computed `power_spectrogram`."""
        return 10 * torch.log10(self._fbank @ power + 1e-10)


class SpeechEmotionNet(nn.Module):
    """``band_normalised``: each mel band's mean over the utterance is removed before the utterance-wide
    standardisation, which takes out a microphone's or room's fixed frequency colouring (cepstral mean
    normalisation); False for networks from before that option."""

    def __init__(
        self, widths: Sequence[int] = WIDTHS, num_classes: int = NUM_CLASSES, band_normalised: bool = False
    ) -> None:
        super().__init__()
        self.band_normalised = band_normalised
        self.features = nn.Sequential(*vgg_layers(widths))
        self.dropout = Dropout(0.3)
        self.embedding_dim = 2 * widths[-1]
        self.head = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, log_mels: torch.Tensor) -> torch.Tensor:
        """float [B, N_MELS, frames] log-mel dB (frames >= 16) -> float [B, embedding_dim]."""
        x = log_mels.float()
        x = x - x.mean(dim=2 if self.band_normalised else (1, 2), keepdim=True)
        x = x / x.std(dim=(1, 2), keepdim=True).clamp(min=MIN_STD_DB)
        h = self.features(F.avg_pool2d(x[:, None], (1, 2))).mean(dim=2)  # [B, C, time]
        return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)

    def forward(self, log_mels: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(log_mels)))


# The file's metadata records the input conventions the network was trained with; a file without them predates both.
BAND_NORMALISED, SPEECH_LEVEL = "band_normalised", "speech_level"


def save_speech_net(net: SpeechEmotionNet, path: Path) -> None:
    """The weights, and the conventions of its input: how its log-mel is normalised, and that the audio encoder
    brings speech to one level before the acoustic descriptor (`normalise_speech_level`: every network saved now)."""
    save_file(
        {name: tensor.detach().cpu().contiguous() for name, tensor in net.state_dict().items()},
        str(path),
        metadata={BAND_NORMALISED: str(net.band_normalised), SPEECH_LEVEL: "normalised"},
    )


def _conventions(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as stored:
        return stored.metadata() or {}


def load_speech_net(path: Path) -> SpeechEmotionNet:
    """The network stored at ``path``, in eval mode; `EncoderUnavailable` with the reason when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise EncoderUnavailable(
            f"the offline audio encoder needs the speech network's weights ({path.name}), which a checkpoint "
            f"carries; none at {path}"
        )
    try:
        net = SpeechEmotionNet(band_normalised=_conventions(path).get(BAND_NORMALISED) == "True")
        net.load_state_dict(load_file(str(path)))
    except Exception as error:  # a truncated or foreign file: say which and why, whatever safetensors/torch raise
        raise EncoderUnavailable(f"{path} is not a usable speech network: {error}") from None
    return net.eval()


def fit_length(log_mel: torch.Tensor) -> torch.Tensor:
    """Repeat a clip shorter than `MIN_FRAMES` until it is long enough (`prepare_audio` allows 0.25 s clips)."""
    frames = log_mel.shape[-1]
    return log_mel if frames >= MIN_FRAMES else log_mel.repeat(1, -(-MIN_FRAMES // frames))


class SpeechEmotionEncoder(Encoder):
    """Speech -> float32 [B, 426]: acoustic descriptor, then the speech network's features and logits."""

    modality = Modality.AUDIO

    def __init__(self, weights: Path, device: torch.device | str = "cpu") -> None:
        self.log_mel = LogMel()
        self.device = torch.device(device)
        self.net = load_speech_net(weights).to(self.device)
        self.descriptor = AcousticDescriptor(level_normalised=_conventions(weights).get(SPEECH_LEVEL) == "normalised")
        self.name = f"{self.descriptor.name}+speech-cnn-{weights_digest(self.net.state_dict())}"
        self.dim = self.descriptor.dim + self.net.embedding_dim + NUM_CLASSES

    def trained_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @torch.inference_mode()
    def encode(self, inputs: Sequence) -> torch.Tensor:
        """float32 16 kHz mono clips (as `prepare_audio` returns them) -> float32 [len(inputs), dim]. Each clip runs
        alone (clips differ in length, and padding would change the pooled features)."""
        if not inputs:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        rows = []
        for clip in inputs:
            waveform = self.descriptor.as_waveform(clip)
            power = power_spectrogram(waveform)  # one STFT for both parts
            features = self.net.embed(fit_length(self.log_mel.from_power(power))[None].to(self.device))
            learned = torch.cat([features, self.net.head(features)], dim=1).float().cpu()
            rows.append(torch.cat([self.descriptor.describe(waveform, power)[None], learned], dim=1))
        return torch.cat(rows)
