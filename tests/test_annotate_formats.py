"""Every container and codec the clip reader accepts is scored and also written as an annotated MP4 with its soundtrack
(mculora.serving.annotate): the annotated file decodes, lasts the clip's duration and carries the whole soundtrack."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from scipy.signal import resample_poly

from mculora.preprocess import UnusableInput
from mculora.preprocess.clip import TARGET_SAMPLE_RATE, ClipReader
from mculora.serving.annotate import write_annotated_video
from mculora.serving.clip_writer import compose_clip

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
FACE, SPEECH = EXAMPLES / "astronaut.jpg", EXAMPLES / "happy_speech.wav"
SECONDS = 2.5

FORMATS = [  # suffix, video codec (None: audio only), audio codec (None: no soundtrack), sample rate
    (".mp4", "libx264", "aac", 16_000),
    (".webm", "libvpx", "libopus", 48_000),
    (".webm", "libvpx-vp9", "libopus", 48_000),
    (".mkv", "libx264", "libopus", 48_000),
    (".mov", "libx264", "aac", 44_100),
    (".avi", "mjpeg", "pcm_s16le", 16_000),
    (".flv", "flv", "mp3", 44_100),  # FLV's demuxer cannot seek back to the start
    (".m4a", None, "aac", 22_050),
    (".mp4", "libx264", None, None),
]


def _voice(rate: int) -> np.ndarray:
    """The example recording of speech at ``rate``, cut to the clip's length."""
    samples, own_rate = sf.read(SPEECH, dtype="float32", always_2d=True)
    voice = resample_poly(samples.mean(axis=1), rate, own_rate).astype(np.float32)
    return voice[: round(SECONDS * rate)]


def _video_seconds(path) -> float:
    """Where the last decoded frame of ``path`` ends."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(frame.time) for frame in container.decode(stream)]
        return times[-1] + 1 / float(stream.average_rate)


def _soundtrack_seconds(path) -> float:
    reader = ClipReader(path)
    list(reader.frames())
    return reader.audio.size / TARGET_SAMPLE_RATE


@pytest.mark.slow
@pytest.mark.parametrize(
    "suffix, video, audio, rate", FORMATS, ids=[f"{s[1:]}-{v or 'novideo'}-{a or 'noaudio'}" for s, v, a, _ in FORMATS]
)
def test_each_readable_format_is_scored_and_annotated(predictor, tmp_path, suffix, video, audio, rate):
    face = np.asarray(Image.open(FACE).convert("RGB"))
    clip = compose_clip(
        tmp_path / f"clip{suffix}",
        [(face, _voice(rate or 16_000) if audio else None, SECONDS)],
        width=160 if video else None,
        height=120,
        fps=20,
        sample_rate=rate,
        video_codec=video,
        audio_codec=audio,
    )
    result = predictor.predict_clip(str(clip), window_s=1.0, hop_s=0.5)
    assert result.windows and result.duration_s == pytest.approx(SECONDS, abs=0.1)

    out = write_annotated_video(clip, result, tmp_path / "annotated.mp4")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert len(container.streams.audio) == (1 if audio else 0)
    assert _video_seconds(out) == pytest.approx(result.duration_s, abs=0.11)
    if audio:  # as the reader measures them; AAC pads the last frame to 1024 samples (64 ms at 16 kHz)
        assert _soundtrack_seconds(out) == pytest.approx(_soundtrack_seconds(clip), abs=0.07)


def test_a_clip_that_cannot_be_opened_again_gets_a_reason(predictor, tmp_path):
    clip = compose_clip(tmp_path / "clip.mp4", [(None, _voice(16_000), SECONDS)], width=None)
    result = predictor.predict_clip(str(clip), window_s=1.0, hop_s=0.5)
    clip.write_bytes(b"gone")  # replaced between scoring and annotating
    with pytest.raises(UnusableInput, match="annotate"):
        write_annotated_video(clip, result, tmp_path / "annotated.mp4")
    assert not (tmp_path / "annotated.mp4").exists()
