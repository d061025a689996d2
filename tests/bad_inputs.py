"""The bad-input matrix: odd, broken and hostile inputs, each with the outcome a user should get.

Every case writes its media as files (what the page and the API receive) and gives the `Predictor.predict` keyword
arguments; `tests/test_bad_inputs.py` runs each one through the Predictor and through the served app's ``/predict`` and
``/ablate``. An outcome is one of:

* `Used`: a result from exactly these modalities (the others not given, or dropped);
* `LeftOut`: a result without one modality, for a reason containing the given text;
* `Refused`: no result, one error whose message contains the given text.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
FACE = EXAMPLES / "astronaut.jpg"
SPEECH = EXAMPLES / "happy_speech.wav"
TEXT = "We won! I can't believe it, this is the best day ever!"
NOTHING_USABLE = "nothing usable to predict from"


@dataclass(frozen=True)
class Used:
    modalities: tuple[str, ...]
    note: str | None = None  # text one of the result's notes must contain


@dataclass(frozen=True)
class LeftOut:
    modality: str
    reason: str  # regular expression searched in the reason


@dataclass(frozen=True)
class Refused:
    message: str  # regular expression searched in the error message


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], dict]  # writes its files into a folder; returns the Predictor's keyword arguments
    expect: Used | LeftOut | Refused


# -- media writers --------------------------------------------------------------------------------------------------


def _speech() -> tuple[np.ndarray, int]:
    samples, rate = sf.read(SPEECH, dtype="float64")
    return samples, rate


def _resampled(rate: int) -> np.ndarray:
    samples, original = _speech()
    positions = np.arange(int(len(samples) * rate / original)) * original / rate
    return np.interp(positions, np.arange(len(samples)), samples)


def _wav(folder: Path, name: str, samples: np.ndarray, rate: int = 16_000, subtype: str = "PCM_16", **kw) -> str:
    path = folder / name
    sf.write(path, samples, rate, subtype=subtype, **kw)
    return str(path)


def _bytes(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def _image(folder: Path, name: str, image: Image.Image, **save) -> str:
    path = folder / name
    image.save(path, **save)
    return str(path)


def _face() -> Image.Image:
    with Image.open(FACE) as opened:
        return opened.convert("RGB")


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header says it is ``width`` x ``height``: a decompression bomb's first bytes."""
    signature = b"\x89PNG\r\n\x1a\n"

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * 1024, 9)  # far too little data: the bomb is in the header
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _video(folder: Path, name: str, frames: list[np.ndarray], fps: float = 10) -> str:
    path = folder / name
    height, width = frames[0].shape[:2] if frames else (64, 64)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def _face_frame(size: int = 256) -> np.ndarray:
    return np.asarray(_face().resize((size, size)))


# -- the cases ------------------------------------------------------------------------------------------------------


def _with_speech(folder: Path, **kwargs) -> dict:
    return {"audio": str(SPEECH), **kwargs}


def _with_text(**kwargs) -> dict:
    return {"text": TEXT, **kwargs}


def _noise(seconds: float, rate: int = 16_000, scale: float = 0.3) -> np.ndarray:
    return scale * np.random.default_rng(0).standard_normal(int(seconds * rate))


TEXT_CASES = [
    Case("text empty", lambda f: _with_speech(f, text=""), LeftOut("text", "the text is empty|not given")),
    Case("text whitespace", lambda f: _with_speech(f, text=" \n\t  "), LeftOut("text", "the text is empty")),
    Case("text zero-width only", lambda f: _with_speech(f, text="\u200b\ufeff\u200d"), LeftOut("text", "empty")),
    Case("text 100 000 characters", lambda f: _with_speech(f, text="so happy " * 11_112), Used(("audio", "text"))),
    Case("text emoji only", lambda f: _with_speech(f, text="😀🎉😭🔥"), Used(("audio", "text"))),
    Case(
        "text control characters",
        lambda f: _with_speech(f, text="\x00\x07hi\x1b[31m there\x7f"),
        Used(("audio", "text")),
    ),
    # Text alone: gradio_client cannot encode lone surrogates, so this one reaches the app as raw JSON (\ud800 escapes).
    Case("text invalid surrogates", lambda f: {"text": "\ud800great\udfff news"}, Used(("text",))),
    Case(
        "text other scripts",
        lambda f: _with_speech(f, text="我今天很高兴 Я очень рад أنا سعيد"),
        Used(("audio", "text")),
    ),
    Case("text right-to-left override", lambda f: _with_speech(f, text="\u202eyppah os"), Used(("audio", "text"))),
    Case("text punctuation only", lambda f: _with_speech(f, text="?!?!..."), Used(("audio", "text"))),
]

UNREADABLE_AUDIO = "could not read audio file"
AUDIO_CASES = [
    Case(
        "audio 0 samples (empty WAV)",
        lambda f: _with_text(audio=_wav(f, "empty.wav", np.zeros(0))),
        LeftOut("audio", "the audio is empty"),
    ),
    Case(
        "audio 1 sample", lambda f: _with_text(audio=_wav(f, "one.wav", np.array([0.5]))), LeftOut("audio", "too short")
    ),
    Case(
        "audio silence",
        lambda f: _with_text(audio=_wav(f, "silence.wav", np.zeros(32_000))),
        LeftOut("audio", "silent"),
    ),
    Case(
        "audio DC only", lambda f: _with_text(audio=_wav(f, "dc.wav", np.full(32_000, 0.5))), LeftOut("audio", "silent")
    ),
    Case(
        "audio NaN",
        lambda f: _with_text(audio=_wav(f, "nan.wav", np.r_[_speech()[0], np.nan], subtype="FLOAT")),
        LeftOut("audio", "NaN or infinity"),
    ),
    Case(
        "audio infinity",
        lambda f: _with_text(audio=_wav(f, "inf.wav", np.r_[np.inf, _speech()[0]], subtype="DOUBLE")),
        LeftOut("audio", "NaN or infinity"),
    ),
    Case(
        "audio clipped noise",  # loud, but no voice
        lambda f: _with_text(audio=_wav(f, "clipped.wav", np.clip(4 * _noise(2), -1, 1))),
        LeftOut("audio", "no speech in the audio"),
    ),
    Case(
        "audio 10 minutes",
        lambda f: _with_text(audio=_wav(f, "long.wav", np.tile(_speech()[0], 600 * 16_000 // len(_speech()[0]) + 1))),
        Used(("audio", "text"), note="longer than the limit"),
    ),
    Case(
        "audio 8 kHz", lambda f: _with_text(audio=_wav(f, "8k.wav", _resampled(8_000), 8_000)), Used(("audio", "text"))
    ),
    Case(
        "audio 48 kHz",
        lambda f: _with_text(audio=_wav(f, "48k.wav", _resampled(48_000), 48_000)),
        Used(("audio", "text")),
    ),
    Case(
        "audio 96 kHz",
        lambda f: _with_text(audio=_wav(f, "96k.wav", _resampled(96_000), 96_000)),
        Used(("audio", "text")),
    ),
    Case(
        "audio 3 kHz",
        lambda f: _with_text(audio=_wav(f, "3k.wav", _resampled(3_000), 3_000)),
        LeftOut("audio", "bad sample rate 3000"),
    ),
    Case(
        "audio stereo",
        lambda f: _with_text(audio=_wav(f, "stereo.wav", np.stack([_speech()[0]] * 2, 1))),
        Used(("audio", "text")),
    ),
    Case(
        "audio 5 channels",
        lambda f: _with_text(audio=_wav(f, "five.wav", np.stack([_speech()[0]] * 5, 1))),
        Used(("audio", "text")),
    ),
    Case(
        "audio corrupt WAV",
        lambda f: _with_text(audio=_bytes(f, "corrupt.wav", b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(256)))),
        LeftOut("audio", UNREADABLE_AUDIO),
    ),
    Case(
        "audio image named .wav",
        lambda f: _with_text(audio=_bytes(f, "photo.wav", FACE.read_bytes())),
        LeftOut("audio", UNREADABLE_AUDIO),
    ),
    Case(
        "audio zero-byte file",
        lambda f: _with_text(audio=_bytes(f, "nothing.wav", b"")),
        LeftOut("audio", UNREADABLE_AUDIO),
    ),
    Case(
        "audio text named .mp3",
        lambda f: _with_text(audio=_bytes(f, "words.mp3", b"just some words\n" * 40)),
        LeftOut("audio", UNREADABLE_AUDIO),
    ),
]

# The same speech stored in each sample format and container the library reads.
SPEECH_ENCODINGS = [
    ("int16", "int16.wav", {"subtype": "PCM_16"}),
    ("int32", "int32.wav", {"subtype": "PCM_32"}),
    ("float64", "float64.wav", {"subtype": "DOUBLE"}),
    ("FLAC", "speech.flac", {"format": "FLAC"}),
    ("Ogg Vorbis", "speech.ogg", {"subtype": "VORBIS", "format": "OGG"}),
]
AUDIO_CASES += [
    Case(
        f"audio {encoding}",
        lambda f, name=name, options=options: _with_text(audio=_wav(f, name, _speech()[0], **options)),
        Used(("audio", "text")),
    )
    for encoding, name, options in SPEECH_ENCODINGS
]

NO_FACE = "no face found in the image"
UNREADABLE_IMAGE = "could not read image"
IMAGE_CASES = [
    Case(
        "image 1x1",
        lambda f: _with_text(image=_image(f, "dot.png", Image.new("RGB", (1, 1)))),
        LeftOut("vision", "too small to hold a face"),
    ),
    Case(
        "image 5000x20",
        lambda f: _with_text(image=_image(f, "strip.png", Image.new("RGB", (5000, 20)))),
        LeftOut("vision", "too narrow to hold a face"),
    ),
    Case(
        "image 40000x1000 (40 MP)",
        lambda f: _with_text(image=_image(f, "panorama.png", Image.new("L", (40_000, 1000)))),
        LeftOut("vision", "too large: 40000x1000"),
    ),
    Case(
        "image 9000x9000",
        lambda f: _with_text(image=_image(f, "huge.png", Image.new("L", (9000, 9000)))),
        LeftOut("vision", "too large: 9000x9000"),
    ),
    Case(
        "image decompression bomb",
        lambda f: _with_text(image=_bytes(f, "bomb.png", _png_claiming(60_000, 60_000))),
        LeftOut("vision", "too large"),
    ),
    Case(
        "image grayscale",
        lambda f: _with_text(image=_image(f, "gray.png", _face().convert("L"))),
        Used(("text", "vision")),
    ),
    Case(
        "image RGBA",
        lambda f: _with_text(image=_image(f, "rgba.png", _face().convert("RGBA"))),
        Used(("text", "vision")),
    ),
    Case(
        "image float (32-bit TIFF)",
        lambda f: _with_text(image=_image(f, "float.tiff", _face().convert("F"))),
        Used(("text", "vision")),
    ),
    Case(
        "image 16-bit PNG",
        lambda f: _with_text(
            image=_image(f, "deep.png", Image.fromarray(np.asarray(_face().convert("L"), np.uint16) * 257))
        ),
        Used(("text", "vision")),
    ),
    Case(
        "image CMYK JPEG",
        lambda f: _with_text(image=_image(f, "cmyk.jpg", _face().convert("CMYK"))),
        Used(("text", "vision")),
    ),
    Case(
        "image GIF", lambda f: _with_text(image=_image(f, "face.gif", _face().convert("P"))), Used(("text", "vision"))
    ),
    Case("image WebP", lambda f: _with_text(image=_image(f, "face.webp", _face())), Used(("text", "vision"))),
    Case(
        "image blank",
        lambda f: _with_text(image=_image(f, "blank.png", Image.new("RGB", (320, 240), "white"))),
        LeftOut("vision", NO_FACE),
    ),
    Case(
        "image noise",
        lambda f: _with_text(
            image=_image(
                f, "noise.png", Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8))
            )
        ),
        LeftOut("vision", NO_FACE),
    ),
    Case(
        "image no face (gradient)",
        lambda f: _with_text(image=_image(f, "sky.png", Image.linear_gradient("L").resize((400, 300)))),
        LeftOut("vision", NO_FACE),
    ),
    Case(
        "image several faces",
        lambda f: _with_text(image=_image(f, "two.png", Image.fromarray(np.hstack([np.asarray(_face())] * 2)))),
        Used(("text", "vision")),
    ),
    Case(
        "image text named .png",
        lambda f: _with_text(image=_bytes(f, "note.png", b"this is not a picture\n" * 20)),
        LeftOut("vision", UNREADABLE_IMAGE),
    ),
    Case(
        "image truncated PNG",
        lambda f: _with_text(image=_bytes(f, "cut.png", _png_bytes()[: len(_png_bytes()) // 2])),
        LeftOut("vision", UNREADABLE_IMAGE),
    ),
    Case(
        "image SVG",
        lambda f: _with_text(image=_bytes(f, "face.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")),
        LeftOut("vision", UNREADABLE_IMAGE),
    ),
]


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    _face().save(buffer, format="PNG")
    return buffer.getvalue()


UNREADABLE_VIDEO = "could not read video"
VIDEO_CASES = [
    Case(
        "video no frames", lambda f: _with_text(video=_video(f, "empty.avi", [])), LeftOut("vision", UNREADABLE_VIDEO)
    ),
    Case(
        "video corrupt",
        lambda f: _with_text(video=_bytes(f, "corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(4000))),
        LeftOut("vision", UNREADABLE_VIDEO),
    ),
    Case(
        "video very long (2 min)",
        lambda f: _with_text(video=_video(f, "long.avi", [_face_frame(128)] * 600, fps=5)),
        Used(("text", "vision")),
    ),
    Case(
        "video without a face",
        lambda f: _with_text(video=_video(f, "wall.avi", [np.full((120, 160, 3), 200, np.uint8)] * 10)),
        LeftOut("vision", "no face found in any sampled video frame"),
    ),
    Case(
        "video and image (image wins)",
        lambda f: _with_text(image=str(FACE), video=_bytes(f, "junk.mp4", b"junk")),
        Used(("text", "vision")),
    ),
]

COMBINATION_CASES = [
    Case(
        "all modalities dropped",
        lambda f: {"image": str(FACE), "audio": str(SPEECH), "text": TEXT, "drop": ["audio", "text", "vision"]},
        Refused(NOTHING_USABLE + ".*dropped by the user"),
    ),
    Case("nothing given", lambda f: {}, Refused(NOTHING_USABLE + ".*not given")),
    Case("only the given modality dropped", lambda f: {"text": TEXT, "drop": ["text"]}, Refused(NOTHING_USABLE)),
    Case(
        "dropped modality not given",
        lambda f: {"text": TEXT, "drop": ["audio"]},
        LeftOut("audio", "dropped by the user"),
    ),
    Case("toggles on, inputs absent", lambda f: {"text": TEXT}, LeftOut("vision", "not given")),
    Case(
        "everything unusable",
        lambda f: {
            "image": _image(f, "white.png", Image.new("RGB", (64, 64), "white")),
            "audio": _wav(f, "mute.wav", np.zeros(16_000)),
            "text": "   ",
        },
        Refused(NOTHING_USABLE + ".*silent.*empty.*no face"),
    ),
    Case(
        "all three usable",
        lambda f: {"image": str(FACE), "audio": str(SPEECH), "text": TEXT},
        Used(("audio", "text", "vision")),
    ),
]

# Run through the Predictor and both endpoints.
MATRIX = TEXT_CASES + AUDIO_CASES + IMAGE_CASES + VIDEO_CASES + COMBINATION_CASES
