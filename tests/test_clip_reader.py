"""Reading clips (mculora.preprocess.clip): containers and codecs, the soundtrack, frame times, rotation, broken files
and the length cap. Clips are written here with mculora.serving.clip_writer from synthetic pictures and tones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mculora.preprocess import UnusableInput
from mculora.preprocess.clip import MAX_CLIP_SECONDS, ClipReader
from mculora.serving.clip_writer import ClipWriter, compose_clip

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def tone(seconds: float, rate: int = 16_000, hz: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * hz * t) * np.minimum(1, t * 10)).astype(np.float32)


def read(path, **options):
    reader = ClipReader(path, **options)
    frames = list(reader.frames())
    return reader, frames


def grey(value: int, width: int = 64, height: int = 48) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


@pytest.mark.parametrize(
    "suffix, video, audio",
    [
        (".mp4", "libx264", "aac"),
        (".mov", "libx264", "aac"),
        (".webm", "libvpx", "libopus"),
        (".webm", "libvpx-vp9", "libopus"),
        (".mkv", "libx264", "pcm_s16le"),
        (".avi", "mpeg4", "mp3"),
        (".mp4", "libsvtav1", "aac"),
    ],
)
def test_containers_and_codecs_give_frames_on_the_grid_and_the_soundtrack(tmp_path, suffix, video, audio):
    rate = 48_000 if audio in ("libopus", "mp3") else 16_000
    speech = tone(3.0, rate)
    path = compose_clip(
        tmp_path / f"clip{suffix}",
        [(grey(40, 128, 96), speech, 3.0)],
        width=128,
        height=96,
        fps=25,
        sample_rate=rate,
        video_codec=video,
        audio_codec=audio,
    )
    reader, frames = read(path, frame_rate=4.0)
    times = [t for t, _ in frames]
    assert len(frames) == 12 and times == pytest.approx([k / 4 for k in range(12)], abs=1 / 25 + 1e-3)
    assert frames[0][1].shape == (96, 128, 3) and frames[0][1].dtype == np.uint8
    assert reader.audio is not None and abs(reader.audio.size / 16_000 - 3.0) < 0.1
    assert reader.duration_s == pytest.approx(3.0, abs=0.1)
    assert reader.video_reason is None and reader.audio_reason is None and reader.notes == []


def test_the_decoded_soundtrack_equals_the_muxed_audio(tmp_path):
    """Lossless PCM comes back sample for sample; AAC within its coding error, and in sync (any delay is found by
    cross-correlation of real speech, which unlike a tone has one best alignment)."""
    speech, rate = sf.read(EXAMPLES / "happy_speech.wav", dtype="float32")
    assert rate == 16_000
    speech = speech[:32_000]
    lossless = compose_clip(tmp_path / "pcm.mkv", [(grey(90), speech, 2.0)], audio_codec="pcm_s16le")
    reader, _ = read(lossless)
    np.testing.assert_allclose(reader.audio[: speech.size], speech, atol=1 / 32768 + 1e-6)

    coded = compose_clip(tmp_path / "aac.mp4", [(grey(90), speech, 2.0)])
    reader, _ = read(coded)
    decoded = reader.audio
    lag = int(np.argmax(np.correlate(decoded[:12_000], speech[:8_000], mode="valid")))
    assert lag <= 16  # the encoder's priming samples are dropped again on decoding: the voice stays in sync
    aligned = decoded[lag : lag + speech.size - 2000]
    error = aligned - speech[: aligned.size]
    assert 10 * np.log10(np.sum(speech[: aligned.size] ** 2) / np.sum(error**2)) > 20  # SNR in dB


def test_a_clip_without_audio_track_and_an_audio_only_clip(tmp_path):
    silent_film = compose_clip(tmp_path / "mute.mp4", [(grey(60), None, 2.0)], sample_rate=None)
    reader, frames = read(silent_film)
    assert len(frames) == 8 and reader.audio is None
    assert reader.audio_reason == "the clip has no audio track"

    voice = compose_clip(tmp_path / "voice.mp4", [(None, tone(2.0), 2.0)], width=None)
    reader, frames = read(voice)
    assert frames == [] and reader.video_reason == "the clip has no video stream"
    assert reader.audio.size == pytest.approx(32_000, abs=1100)


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path):
    """Frames at irregular times (a phone or a browser under load): the grid point goes to the first frame at or
    after it, and a gap skips grid points instead of bursting."""
    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.05, 0.1, 0.6, 0.62, 0.64, 2.0, 2.3]  # a 1.4 s gap
    with ClipWriter(path, 64, 48, fps=30) as writer:
        for i, t in enumerate(times):
            writer.add_frame(grey(20 * i), time=t)
    _, frames = read(path, frame_rate=2.0)
    assert [round(t, 2) for t, _ in frames] == [0.0, 0.6, 2.0]


@pytest.mark.parametrize("rotation, turn", [(90, -1), (-90, 1), (180, 2)])
def test_rotation_metadata_turns_frames_upright(tmp_path, rotation, turn):
    """A portrait picture stored turned (as phones store it) with the display rotation that undoes the turn."""
    upright = np.zeros((64, 48, 3), np.uint8)
    upright[:16] = 255  # a white band at the top
    stored = np.ascontiguousarray(np.rot90(upright, turn))
    path = tmp_path / "phone.mp4"
    with ClipWriter(path, stored.shape[1], stored.shape[0], fps=10, rotation=rotation) as writer:
        for _ in range(10):
            writer.add_frame(stored)
    _, frames = read(path)
    frame = frames[0][1]
    assert frame.shape == (64, 48, 3)
    assert frame[:12].mean() > 200 and frame[20:].mean() < 30


def test_large_frames_are_shrunk(tmp_path):
    path = compose_clip(tmp_path / "big.mp4", [(None, None, 0.5)], width=1920, height=1080, sample_rate=None)
    _, frames = read(path)
    assert frames[0][1].shape == (720, 1280, 3)


def test_broken_files_get_a_reason(tmp_path):
    missing = tmp_path / "nothing.mp4"
    with pytest.raises(UnusableInput, match="no such file"):
        ClipReader(missing)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UnusableInput, match="the file is empty"):
        ClipReader(empty)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(UnusableInput, match="not a video or audio file"):
        ClipReader(noise)
    text = tmp_path / "notes.webm"
    text.write_text("not a video\n" * 100)
    with pytest.raises(UnusableInput, match="not a video or audio file"):
        ClipReader(text)


def test_a_truncated_clip_is_read_up_to_the_break_or_refused(tmp_path):
    whole = compose_clip(tmp_path / "whole.webm", [(grey(70), tone(4.0, 48_000), 4.0)], sample_rate=48_000)
    data = whole.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    reader, frames = read(cut)
    assert 0.5 < reader.duration_s < 3.5 and frames
    # An MP4 whose index (written last) is cut off cannot be read at all: a reason, not a crash.
    mp4 = compose_clip(tmp_path / "whole.mp4", [(grey(70), tone(4.0), 4.0)]).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[: len(mp4) // 2])
    with pytest.raises(UnusableInput, match="truncated"):
        ClipReader(tmp_path / "cut.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".avi"])
def test_a_zero_length_clip_is_refused(tmp_path, suffix):
    path = tmp_path / f"zero{suffix}"
    writer = ClipWriter(path, 64, 48, sample_rate=16_000)
    writer._container.start_encoding()  # the header with both streams, then not one frame
    writer.close()
    with pytest.raises(UnusableInput, match="0 s long"):
        read(path)


def test_the_length_cap_at_its_boundary(tmp_path):
    """A clip of exactly MAX_CLIP_SECONDS is read whole; a longer one up to the cap, with a note."""
    at_cap = compose_clip(
        tmp_path / "at.mp4", [(None, tone(MAX_CLIP_SECONDS, 8000), MAX_CLIP_SECONDS)], 32, 32, 2, 8000
    )
    reader, frames = read(at_cap, frame_rate=1.0)
    assert reader.notes == [] and reader.duration_s == pytest.approx(MAX_CLIP_SECONDS, abs=0.2)
    assert len(frames) == MAX_CLIP_SECONDS
    over = compose_clip(
        tmp_path / "over.mp4", [(None, tone(MAX_CLIP_SECONDS + 5, 8000), MAX_CLIP_SECONDS + 5)], 32, 32, 2, 8000
    )
    reader, frames = read(over, frame_rate=1.0)
    assert reader.duration_s == MAX_CLIP_SECONDS and len(frames) == MAX_CLIP_SECONDS
    assert reader.audio.size == MAX_CLIP_SECONDS * 16_000
    assert any(f"longer than {MAX_CLIP_SECONDS:.0f} s" in note for note in reader.notes)
