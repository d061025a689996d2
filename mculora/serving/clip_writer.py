"""Writing clips with PyAV: video frames and a soundtrack muxed into one file.

The annotated export uses it (H.264 + AAC in MP4, what browsers and social sites play), and so do the tests and the
benchmark, which build talking-face clips from still faces and speech recordings of known labels.

    with ClipWriter("out.mp4", width=1280, height=720, fps=30, sample_rate=16_000) as writer:
        writer.add_frame(rgb)           # uint8 [H, W, 3]; or add_frame(rgb, time=1.25) for variable frame rates
        writer.add_audio(samples)       # float32 [n] or [n, channels] in [-1, 1]
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Milliseconds: fine enough for any frame rate a camera records, and what WebM uses anyway.
_TIME_BASE = Fraction(1, 1000)
_CODECS = {  # container -> (video, audio)
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "libopus"),
    ".webm": ("libvpx", "libopus"),
    ".avi": ("mpeg4", "mp3"),
}


class ClipWriter:
    """A clip file being written; ``width=None`` writes an audio-only file, ``sample_rate=None`` a silent one.

    ``video_codec`` / ``audio_codec`` default by the file's extension (`_CODECS`). ``rotation``: degrees of display
    rotation to record in the file (as phones do for portrait video). ``bitrate``: the audio bitrate in bit/s.
    ``container_options``: the muxer's, e.g. ``{"live": "1"}`` for a WebM without a declared length, as browsers
    record."""

    def __init__(
        self,
        path: str | os.PathLike,
        width: int | None,
        height: int | None,
        fps: float = 30.0,
        sample_rate: int | None = None,
        channels: int = 1,
        video_codec: str | None = None,
        audio_codec: str | None = None,
        rotation: int = 0,
        bitrate: int | None = None,
        container_options: dict[str, str] | None = None,
    ) -> None:
        path = Path(path)
        default_video, default_audio = _CODECS.get(path.suffix.lower(), _CODECS[".mp4"])
        self._container = av.open(str(path), mode="w", options=container_options or {})
        self._video = self._audio = None
        self._frames = 0
        self.fps = fps
        if width is not None:
            self._video = self._container.add_stream(
                video_codec or default_video, rate=Fraction(fps).limit_denominator(1001)
            )
            # 4:2:0 needs even sides.
            self._video.width, self._video.height = width - width % 2, height - height % 2
            # 4:2:0, in the variant the codec lists first (MJPEG's is the full-range yuvj420p).
            formats = [f.name for f in self._video.codec_context.codec.video_formats or ()]
            self._video.pix_fmt = next((f for f in formats if f in ("yuv420p", "yuvj420p")), "yuv420p")
            self._video.time_base = _TIME_BASE
            self._video.codec_context.time_base = _TIME_BASE
            if self._video.codec_context.name == "libx264":
                self._video.options = {"preset": "veryfast", "crf": "23"}
            if rotation:
                self._video.set_display_rotation(rotation)
        if sample_rate is not None:
            self._audio = self._container.add_stream(audio_codec or default_audio, rate=sample_rate)
            self._audio.layout = "mono" if channels == 1 else "stereo"
            if bitrate:
                self._audio.bit_rate = bitrate
        self._samples = 0

    def add_frame(self, rgb: np.ndarray, time: float | None = None) -> None:
        """One frame, shown from ``time`` seconds (default: the next tick of ``fps``)."""
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[: self._video.height, : self._video.width]), "rgb24"
        )
        seconds = self._frames / self.fps if time is None else time
        frame.pts, frame.time_base = round(seconds / _TIME_BASE), _TIME_BASE
        self._frames += 1
        self._container.mux(self._video.encode(frame))

    def add_audio(self, samples: np.ndarray) -> None:
        """Float samples in [-1, 1], [n] or [n, channels], appended to the soundtrack."""
        samples = np.asarray(samples, dtype=np.float32)
        planar = samples[None] if samples.ndim == 1 else samples.T
        layout = "mono" if planar.shape[0] == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = self._audio.rate, self._samples
        frame.time_base = Fraction(1, self._audio.rate)
        self._samples += planar.shape[1]
        self._container.mux(self._audio.encode(frame))

    def close(self) -> None:
        for stream in (self._video, self._audio):
            if stream is not None:
                self._container.mux(stream.encode(None))
        self._container.close()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def compose_clip(
    path: str | os.PathLike,
    parts: list[tuple[np.ndarray | None, np.ndarray | None, float]],
    width: int = 640,
    height: int = 480,
    fps: float = 25.0,
    sample_rate: int = 16_000,
    **options,
) -> Path:
    """A talking-face clip from parts ``(face RGB or None, 16 kHz mono speech or None, seconds)`` played one after
    another: each face is scaled to 70 % of the frame's height (or width, if narrower) on a grey background (a blank
    frame for None), and the speech starts with its part, padded with silence or cut to the part's length.
    ``options`` go to `ClipWriter` (codecs, rotation; ``sample_rate=None`` for no soundtrack, ``width=None`` for audio
    only)."""
    import cv2

    video = width is not None
    audio = sample_rate is not None
    with ClipWriter(path, width, height, fps, sample_rate if audio else None, **options) as writer:
        frame_index, elapsed = 0, 0.0
        for face, speech, seconds in parts:
            elapsed += seconds
            if video:
                canvas = np.full((height, width, 3), 128, np.uint8)
                if face is not None:
                    scale = 0.7 * min(height / face.shape[0], width / face.shape[1])
                    size = (round(face.shape[1] * scale), round(face.shape[0] * scale))
                    scaled = cv2.resize(face, size, interpolation=cv2.INTER_CUBIC)
                    top, left = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
                    canvas[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
                while frame_index < round(elapsed * fps):
                    writer.add_frame(canvas)
                    frame_index += 1
            if audio:
                count = round(seconds * sample_rate)
                track = np.zeros(count, np.float32)
                if speech is not None:
                    track[: min(count, speech.size)] = speech[:count]
                writer.add_audio(track)
    return Path(path)
