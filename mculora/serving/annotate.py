"""The annotated clip people post: the original frames and soundtrack with the scores drawn on, as an H.264/AAC MP4.

Each frame shows the window whose centre is nearest to the frame's time (so labels change on the window grid, at the
frame where the next window's centre is closer), drawn as:

* a band along the top in the label's colour (the colours of every chart, `mculora.serving.plots.label_colours`) with
  the label, its probability and the combination it came from;
* the face box of the nearest sampled frame with a face, in the same colour, while a face is in view;
* small bars in the bottom-left corner: each combination's label and its probability for that window.

A voice-only clip gets a plain 640x360 canvas with the same band and bars. The soundtrack is decoded and encoded again
as AAC at its own sample rate where AAC has it (any input codec fits an MP4 that way). A clip that cannot be written
raises `UnusableInput` with the reason.
"""

from __future__ import annotations

import bisect
import itertools
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from mculora.preprocess import UnusableInput
from mculora.preprocess.clip import ClipReader
from mculora.serving.clip_result import ALL, ClipResult, ClipWindow
from mculora.serving.clip_writer import ClipWriter
from mculora.serving.plots import label_colours

CANVAS = (640, 360)  # width, height of a voice-only clip's picture
CANVAS_FPS = 10.0
_BAND = 1 / 12  # the label band's height as a fraction of the frame's
_TRACK_HOLD_S = 0.5  # a face box stays drawn this long after the sampled frame it was found in


def write_annotated_video(
    clip: str | os.PathLike, result: ClipResult, out: str | os.PathLike, method: str | None = None, combination=ALL
) -> Path:
    """Draw ``result`` (for ``method``, default the first, and ``combination``, default each window's all
    modalities) on ``clip`` and write it to ``out`` (MP4)."""
    method = method or result.methods[0]
    colours = {label: _rgb(colour) for label, colour in label_colours(result.labels).items()}
    centres = [(w.start + w.end) / 2 for w in result.windows]
    track_times = [track.time for track in result.tracks]

    def window_at(time: float) -> ClipWindow:
        k = bisect.bisect_left(centres, time)
        if k == len(centres) or (k > 0 and time - centres[k - 1] <= centres[k] - time):
            k -= 1
        return result.windows[k]

    def annotate(rgb: np.ndarray, time: float) -> np.ndarray:
        window = window_at(time)
        row = window.row(method, combination)
        picture = rgb.copy()
        if row is not None:
            colour = colours[row.label]
            _draw_face_box(picture, result, track_times, time, colour)
            _draw_band(picture, f"{row.label} {row.probabilities[row.label]:.0%}  [{row.combination}]", colour)
        else:
            _draw_band(picture, "no usable modality in this window", (90, 90, 90))
        _draw_bars(picture, [r for r in window.rows if r.method == method], colours)
        return picture

    with _opened(clip) as source:
        audio_stream = next(iter(source.streams.audio), None)
        channels = 1 if audio_stream is None or audio_stream.channels == 1 else 2
        rate = _aac_rate(audio_stream.rate) if audio_stream is not None else None
        has_video = bool(source.streams.video)
        fps = _fps(source) if has_video else CANVAS_FPS
    frames = _every_frame(clip, result.duration_s) if has_video else iter(())
    first = next(frames, None)
    if first is None:  # a voice-only clip
        fps = CANVAS_FPS
        blank = np.full((CANVAS[1], CANVAS[0], 3), 32, np.uint8)
        frames = ((k / fps, blank) for k in range(max(1, round(result.duration_s * fps))))
        first = next(frames)
    height, width = first[1].shape[:2]
    try:
        with ClipWriter(out, width, height, fps, rate, channels) as writer:
            for time, rgb in itertools.chain([first], frames):
                writer.add_frame(annotate(rgb, time), time=time)
            if rate is not None:
                _copy_soundtrack(clip, writer, rate, result.duration_s, channels)
    except av.FFmpegError as error:
        Path(out).unlink(missing_ok=True)
        raise UnusableInput(f"the annotated video could not be written: {error}") from None
    return Path(out)


def _opened(clip):
    try:
        return av.open(str(Path(clip)), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise UnusableInput(f"the clip could not be opened again to annotate it: {error}") from None


def _aac_rate(rate: int) -> int:
    """The soundtrack's own rate where AAC can carry it, else the nearest rate above it that AAC can (or 48 kHz)."""
    rates = sorted(av.codec.Codec("aac", "w").audio_rates)
    return rate if rate in rates else next((r for r in rates if r > rate), 48_000)


def _every_frame(clip, duration_s: float):
    """Every decoded frame of the clip, upright, with its time (the reader sampling at a rate above any camera's)."""
    yield from ClipReader(clip, frame_rate=1000.0, max_seconds=duration_s, soundtrack=False).frames()


def _fps(container) -> float:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate and 0 < float(rate) <= 240 else 30.0


def _copy_soundtrack(clip, writer: ClipWriter, rate: int, duration_s: float, channels: int) -> None:
    """The clip's first audio stream, decoded from a fresh opening of the file (some demuxers, FLV's among them, cannot
    seek back) and resampled to ``rate``, up to ``duration_s``."""
    with _opened(clip) as source:
        stream = source.streams.audio[0]
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        limit = round(duration_s * rate)
        written = 0
        start = stream.start_time * stream.time_base if stream.start_time is not None else Fraction(0)
        skip = max(0, round(float(start) * rate)) if start < 0 else 0
        try:
            for frame in source.decode(stream):
                for converted in resampler.resample(frame):
                    samples = converted.to_ndarray().T[skip:]
                    skip = max(0, skip - converted.samples)
                    samples = samples[: max(0, limit - written)]
                    if samples.size:
                        writer.add_audio(samples)
                        written += samples.shape[0]
        except av.FFmpegError:
            pass  # a broken tail: the reader already noted it, and the soundtrack ends where the scores do


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))


def _draw_band(picture: np.ndarray, text: str, colour: tuple[int, int, int]) -> None:
    height = max(16, round(picture.shape[0] * _BAND))
    picture[:height] = colour
    scale = height / 40
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(
        picture,
        text,
        (8, round(height * 0.72)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        ink,
        max(1, round(scale * 2)),
        cv2.LINE_AA,
    )


def _draw_face_box(picture, result: ClipResult, track_times, time: float, colour) -> None:
    k = bisect.bisect_right(track_times, time + 1e-6) - 1
    if k < 0 or time - track_times[k] > _TRACK_HOLD_S:
        return
    track = result.tracks[k]
    sx, sy = picture.shape[1] / track.frame_size[0], picture.shape[0] / track.frame_size[1]
    x0, y0, x1, y1 = track.box
    thickness = max(2, picture.shape[0] // 240)
    cv2.rectangle(picture, (round(x0 * sx), round(y0 * sy)), (round(x1 * sx), round(y1 * sy)), colour, thickness)


def _draw_bars(picture: np.ndarray, rows, colours) -> None:
    """One line per combination: its name, a bar of its label's probability in the label's colour, the label."""
    line = max(12, picture.shape[0] // 30)
    width = picture.shape[1] // 6
    scale = line / 30
    top = picture.shape[0] - line * len(rows) - line // 2
    for i, row in enumerate(rows):
        y = top + i * line
        p = row.probabilities[row.label]
        cv2.rectangle(picture, (4, y), (4 + 2 * line + width + 6 * line, y + line - 2), (0, 0, 0), -1)
        cv2.putText(
            picture,
            row.combination,
            (8, y + line - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        x = 8 + 2 * line
        cv2.rectangle(picture, (x, y + 2), (x + max(1, round(p * width)), y + line - 4), colours[row.label], -1)
        label = f"{row.label} {p:.0%}"
        cv2.putText(
            picture,
            label,
            (x + width + 4, y + line - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
