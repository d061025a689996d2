"""Recorded clips: one file's video stream and soundtrack, decoded together as a stream.

`ClipReader` demultiplexes a container (MP4, MOV, WebM, MKV, AVI, ...) with PyAV, whose wheel carries its own FFmpeg
libraries (H.264, HEVC, VP8/9, AV1 through dav1d; AAC, Opus, MP3, Vorbis, PCM), so no system package is needed on a
fresh machine or a Space. Frames are never collected: `ClipReader.frames` yields one RGB frame per point of a
``frame_rate`` grid, upright (rotation metadata applied) and shrunk to `MAX_VIDEO_SIDE`, and meanwhile resamples the
soundtrack to 16 kHz mono (`TARGET_SAMPLE_RATE`) as it goes. A clip is read up to `MAX_CLIP_SECONDS`.

A clip that lacks a stream is still a clip: an audio-only file is a voice-only clip and a silent film is a face-only
one. `ClipReader.video_reason` and `ClipReader.audio_reason` say why a stream is missing, and a container that breaks
off part-way is read up to the break, with a note.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import TARGET_SAMPLE_RATE
from mculora.preprocess.vision import MAX_VIDEO_SIDE

# A demo clip is a few sentences; two minutes bounds the work of one request (about 15 s on 2 CPU cores).
MAX_CLIP_SECONDS = 120.0
# Faces are read this often: a facial expression changes over a few hundred milliseconds, and 4 frames/s keeps a
# 30 s 720p clip well inside the real-time budget (most of it is the face mesh).
FRAME_RATE = 4.0


class ClipReader:
    """One clip file, opened; iterate `frames` once to decode it (see the module docstring).

    After `frames` is exhausted: ``audio`` (float32 [n] at 16 kHz, or None), ``duration_s`` (what was decoded),
    ``notes`` (cuts and breaks a person should know of)."""

    def __init__(
        self,
        path: str | os.PathLike,
        frame_rate: float = FRAME_RATE,
        max_seconds: float = MAX_CLIP_SECONDS,
        soundtrack: bool = True,
    ) -> None:
        """``soundtrack=False`` decodes the video frames only (``audio`` stays None), for a caller that reads the
        soundtrack its own way."""
        if frame_rate <= 0 or max_seconds <= 0:
            raise ValueError(f"frame_rate and max_seconds must be positive, got {frame_rate} and {max_seconds}")
        self.path = Path(path)
        self.name = self.path.name
        self.frame_rate, self.max_seconds = frame_rate, max_seconds
        if not self.path.is_file():
            raise UnusableInput(f"could not read clip {self.name}: no such file")
        if self.path.stat().st_size == 0:
            raise UnusableInput(f"could not read clip {self.name}: the file is empty")
        try:
            self._container = av.open(str(self.path), mode="r", metadata_errors="ignore")
        except av.EOFError:
            raise UnusableInput(
                f"could not read clip {self.name}: it ends before any video or sound (0 s long, or truncated)"
            ) from None
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
            raise UnusableInput(
                f"could not read clip {self.name}: not a video or audio file this app reads, or a truncated one "
                f"(FFmpeg: {_reason(error)})"
            ) from None
        self._video = next(iter(self._container.streams.video), None)
        self._audio = next(iter(self._container.streams.audio), None)
        if self._video is None and self._audio is None:
            self._container.close()
            raise UnusableInput(f"could not read clip {self.name}: it holds neither video nor sound (0 s long)")
        if self._video is not None:
            self._video.thread_type = "AUTO"  # frame threads: decoding is most of a clip's cost on 2 cores
        declared = self._container.duration  # kept: the container is closed once read
        self._declared_s = None if declared is None or declared <= 0 else declared / av.time_base
        self.video_reason = None if self._video is not None else "the clip has no video stream"
        self.audio_reason = None if self._audio is not None else "the clip has no audio track"
        if not soundtrack:
            self._audio, self.audio_reason = None, "the soundtrack was not read"
        self.audio: np.ndarray | None = None
        self.duration_s = 0.0
        self.notes: list[str] = []
        self._chunks: list[np.ndarray] = []
        self._file_bytes, self._bytes_read = self.path.stat().st_size, 0

    @property
    def expected_seconds(self) -> float | None:
        """The length the container declares (capped), for progress bars; None when it does not say (browser
        recordings often do not)."""
        return None if self._declared_s is None else min(self._declared_s, self.max_seconds)

    @property
    def read_fraction(self) -> float:
        """The share of the file's bytes read so far: progress for a clip that declares no length."""
        return min(1.0, self._bytes_read / max(1, self._file_bytes))

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """``(seconds, RGB uint8 [H, W, 3])`` for each sampled video frame, in time order; the soundtrack is decoded
        alongside. Frame times come from each frame's timestamp (variable frame rates, streams not starting at 0)."""
        streams = [s for s in (self._video, self._audio) if s is not None]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_SAMPLE_RATE)
        start = self._start_time(streams)
        next_sample, last_video = 0.0, -math.inf
        video_end = audio_end = 0.0
        samples = 0  # of the soundtrack, resampled, so far
        past_cap = set()
        try:
            for packet in self._container.demux(streams):
                self._bytes_read += packet.size
                if packet.stream in past_cap:
                    continue
                for frame in self._decode(packet):
                    time = _seconds(frame) - start if _seconds(frame) is not None else None
                    if isinstance(frame, av.VideoFrame):
                        # Frames without a timestamp follow the previous one at the stream's average rate.
                        time = time if time is not None and time > last_video else last_video + self._frame_step()
                        time = max(time, 0.0)
                        if time >= self.max_seconds:
                            past_cap.add(packet.stream)
                            break
                        last_video = time
                        video_end = time + self._frame_step()
                        if time + 1e-6 >= next_sample:
                            yield time, _upright_rgb(frame)
                            # The next grid point after this frame: a gap in the stream skips points, no burst.
                            next_sample = (math.floor(time * self.frame_rate + 1e-6) + 1) / self.frame_rate
                    else:
                        for mono in resampler.resample(frame):
                            self._chunks.append(mono.to_ndarray()[0])
                            samples += self._chunks[-1].size
                        audio_end = samples / TARGET_SAMPLE_RATE
                        # A fraction of a second over is codec padding (whole AAC frames), not more clip.
                        if audio_end >= self.max_seconds + 0.25:
                            past_cap.add(packet.stream)
                if len(past_cap) == len(streams):
                    break
        except av.FFmpegError as error:
            self.notes.append(
                f"the clip breaks off after {max(video_end, audio_end):.1f} s ({_reason(error)}); the rest was not read"
            )
        finally:
            self._container.close()
        if self._audio is not None:  # the resampler holds back its last few milliseconds until flushed
            self._chunks.extend(m.to_ndarray()[0] for m in resampler.resample(None))
        self._finish(video_end, past_cap)

    def _finish(self, video_end: float, past_cap: set) -> None:
        cap = int(self.max_seconds * TARGET_SAMPLE_RATE)
        if self._audio is not None:
            samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            self.audio = np.ascontiguousarray(samples[:cap], dtype=np.float32)
            if self.audio.size == 0:
                self.audio, self.audio_reason = None, "the soundtrack holds no sound that could be decoded"
        if self._video is not None and video_end == 0.0:
            self.video_reason = "no video frame could be decoded"
        audio_s = 0.0 if self.audio is None else self.audio.size / TARGET_SAMPLE_RATE
        self.duration_s = min(max(video_end, audio_s), self.max_seconds)
        declared = self.expected_seconds
        if not past_cap and declared is not None and self.duration_s < declared - 0.5:
            self.notes.append(
                f"the clip ends at {self.duration_s:.1f} s although its header says {declared:.1f} s: it is probably "
                "truncated"
            )
        if past_cap:
            self.notes.append(
                f"the clip is longer than {self.max_seconds:.0f} s: only its first {self.max_seconds:.0f} s were read"
            )
        if self.duration_s == 0.0:
            raise UnusableInput(f"could not read clip {self.name}: it is 0 s long (nothing could be decoded)")

    def _decode(self, packet: av.Packet) -> list:
        """The packet's frames; a corrupt packet inside a readable stream is skipped (decoders resynchronise)."""
        try:
            return packet.decode()
        except av.InvalidDataError:
            return []

    def _frame_step(self) -> float:
        rate = self._video.average_rate or self._video.guessed_rate
        return 1.0 / float(rate) if rate and 0 < float(rate) <= 1000 else 1.0 / 25.0

    def _start_time(self, streams: list) -> float:
        """The clip's zero: the earliest stream start (MP4s from editors and MKVs may start after 0)."""
        starts = [s.start_time * s.time_base for s in streams if s.start_time is not None and s.time_base]
        return float(min(starts)) if starts else 0.0


def _seconds(frame) -> float | None:
    return None if frame.pts is None or frame.time_base is None else float(frame.pts * frame.time_base)


def _upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as RGB, no side above `MAX_VIDEO_SIDE`, turned as its display matrix says (phones record
    portrait video as landscape frames plus a rotation)."""
    shrink = min(1.0, MAX_VIDEO_SIDE / max(frame.width, frame.height))
    width, height = (max(2, round(side * shrink)) for side in (frame.width, frame.height))
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
    # `rotation` is the counter-clockwise angle that displays the frame upright; np.rot90 turns counter-clockwise.
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _reason(error: Exception) -> str:
    """FFmpeg's own words without the server's path."""
    message = getattr(error, "strerror", None) or str(error)
    return str(message).split(": '")[0]
