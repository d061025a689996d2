"""Raw media -> feature vectors: preprocessing plus the encoders, shared by the Predictor and the extraction CLI.

Each modality is optional. One that is not given, that the user drops, or that turns out unusable (no face,
silent audio, empty text) is recorded as missing with a reason a person can read.

The work is in two steps. `Featurizer.prepare` decodes and checks the inputs (image and audio decoding, resampling,
the face mesh, text cleaning) and runs no torch kernel; `Featurizer.encode` runs the encoders. A server runs the
first on its request threads and only the second on its one torch thread, so one request's decoding and face mesh
overlap another's encoders and model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mculora.encoders import Encoder
from mculora.encoders.face_net import FaceExpressionEncoder
from mculora.modalities import MODALITIES, Modality
from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import READ_SECONDS, PreparedAudio, prepare_audio
from mculora.preprocess.text import prepare_text
from mculora.preprocess.vision import Face, FaceFinder, read_video_frames
from mculora.preprocess.voice_activity import require_speech

NOT_GIVEN = "not given"
DROPPED = "dropped by the user"


@dataclass
class UtteranceFeatures:
    """One utterance after preprocessing and encoding: the model's input, reusable as dialogue history."""

    vectors: dict[Modality, torch.Tensor]  # float32 [dim] per usable modality
    missing: dict[Modality, str]  # reason per modality left out
    face: Face | None = None  # the face the vision encoder saw (the first one, for a video)
    notes: list[str] = field(default_factory=list)  # e.g. that long audio was cut
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class PreparedInputs:
    """One utterance's inputs decoded and checked, before any encoder has run."""

    audio: PreparedAudio | None = None
    text: str | None = None
    faces: list[Face] = field(default_factory=list)  # one for an image; those of the sampled frames for a video
    missing: dict[Modality, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def stopwatch(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the block's wall time, in milliseconds, to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000


def as_modality(value: Modality | str) -> Modality:
    """``Modality`` from itself, its name ("audio") or its letter ("a")."""
    if isinstance(value, Modality):
        return value
    try:
        return Modality(value) if len(value) > 1 else Modality.from_letter(value)
    except ValueError:
        raise ValueError(f"unknown modality {value!r}; use audio, text or vision (or a, t, v)") from None


class Featurizer:
    def __init__(self, encoders: dict[Modality, Encoder]):
        self.encoders = encoders
        self.face_finder = FaceFinder()

    # -- preparing: decoding and checks, no encoder ----------------------------------------------------------

    def prepare_audio(
        self, source, timings: dict[str, float], notes: list[str], check_speech: bool = False
    ) -> PreparedAudio:
        """Any supported audio input, decoded, resampled and trimmed; with ``check_speech``, refused unless it holds
        speech (a prediction's input; a corpus being extracted is speech by construction, and a clip checks its
        soundtrack once). Raises `UnusableInput`."""
        with stopwatch(timings, "audio_preprocess"):
            prepared = prepare_audio(source)
            if check_speech:
                require_speech(prepared.samples)
        if prepared.capped:
            notes.append(
                f"the audio was longer than the limit: {prepared.duration_s:.0f} s of sound from the first "
                f"{READ_SECONDS:.0f} s were used"
            )
        return prepared

    def find_faces(self, image, video, timings: dict[str, float]) -> list[Face]:
        """The face of an image, or without one those of a video's sampled frames. Raises `UnusableInput`."""
        with stopwatch(timings, "vision_detect"):
            if image is not None:
                return [self.face_finder.find(image)]
            faces = [face for face in self.face_finder.find_many(read_video_frames(video)) if face is not None]
        if not faces:
            raise UnusableInput("no face found in any sampled video frame")
        return faces

    def prepare(
        self,
        image=None,
        audio=None,
        text: str | None = None,
        video: str | Path | None = None,
        drop: Iterable[Modality | str] = (),
    ) -> PreparedInputs:
        """Decode and check whatever is given. An image is used when given; otherwise a video's frames."""
        dropped = {as_modality(m) for m in drop}
        result = PreparedInputs()
        given = {Modality.AUDIO: audio, Modality.TEXT: text, Modality.VISION: image if image is not None else video}
        for modality in MODALITIES:
            if modality in dropped:
                result.missing[modality] = DROPPED
            elif given[modality] is None:
                result.missing[modality] = NOT_GIVEN
            else:
                try:
                    if modality is Modality.AUDIO:
                        result.audio = self.prepare_audio(audio, result.timings_ms, result.notes, check_speech=True)
                    elif modality is Modality.TEXT:
                        with stopwatch(result.timings_ms, "text_preprocess"):
                            result.text = prepare_text(text)
                    else:
                        result.faces = self.find_faces(image, video, result.timings_ms)
                except UnusableInput as reason:
                    result.missing[modality] = str(reason)
        return result

    # -- encoding ------------------------------------------------------------------------------------------------

    def encode(self, prepared: PreparedInputs) -> UtteranceFeatures:
        """The encoders' vectors of prepared inputs. For a video the vectors of the frames with a face are averaged."""
        return self.encode_many([prepared])[0]

    def encode_many(self, prepared: Sequence[PreparedInputs]) -> list[UtteranceFeatures]:
        """`encode` of several utterances, one call per encoder for all of them (what a server's queued requests
        share). Each utterance's timings give the stage times of the whole batch it ran in."""
        results = [
            UtteranceFeatures({}, dict(p.missing), notes=list(p.notes), timings_ms=dict(p.timings_ms)) for p in prepared
        ]
        # Per stage: the rows it serves, and the one input of each row its encoder takes.
        one_each = {
            "audio_encode": (
                Modality.AUDIO,
                {i: p.audio.samples for i, p in enumerate(prepared) if p.audio is not None},
            ),
            "text_encode": (Modality.TEXT, {i: p.text for i, p in enumerate(prepared) if p.text is not None}),
        }
        for stage, (modality, inputs) in one_each.items():
            if inputs:
                timings: dict[str, float] = {}
                with stopwatch(timings, stage):
                    vectors = self.encoders[modality].encode(list(inputs.values()))
                for i, vector in zip(inputs, vectors, strict=True):
                    results[i].vectors[modality] = vector
                    results[i].timings_ms.update(timings)
        faces = {i: p.faces for i, p in enumerate(prepared) if p.faces}
        if faces:
            timings = {}
            with stopwatch(timings, "vision_encode"):
                vectors = self.encoders[Modality.VISION].encode([face for frames in faces.values() for face in frames])
                split = vectors.split([len(frames) for frames in faces.values()])
            for (i, frames), vector in zip(faces.items(), split, strict=True):
                results[i].vectors[Modality.VISION] = vector.mean(dim=0)
                results[i].face = frames[0]
                results[i].timings_ms.update(timings)
        return results

    # -- one modality, for batch extraction, clips and enrolment ---------------------------------------------

    def face_in(self, image) -> Face:
        """The largest face of an image or RGB frame. Raises `UnusableInput`."""
        return self.face_finder.find(image)

    def faces_in(self, frames: Iterable) -> list[Face | None]:
        """Each RGB frame's largest face, or None where it shows none."""
        return self.face_finder.find_many(frames)

    def encode_faces(self, faces: Sequence[Face]) -> torch.Tensor:
        """The vision encoder's vectors [N, D] of found faces."""
        return self.encoders[Modality.VISION].encode(list(faces))

    def encode_speech(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """The audio encoder's vectors [N, D] of prepared 16 kHz speech (`mculora.preprocess.audio`)."""
        return self.encoders[Modality.AUDIO].encode(list(clips))

    @property
    def face_logits(self) -> bool:
        """Whether the vision vectors end with the face network's logits, by which a clip window weighs its frames
        (`mculora.serving.window_pooling`)."""
        return isinstance(self.encoders[Modality.VISION], FaceExpressionEncoder)

    def audio(self, source, timings: dict[str, float], notes: list[str]) -> torch.Tensor:
        """Any supported audio input -> the audio encoder's vector. Raises `UnusableInput`."""
        prepared = self.prepare_audio(source, timings, notes)
        with stopwatch(timings, "audio_encode"):
            return self.encoders[Modality.AUDIO].encode([prepared.samples])[0]

    def texts(self, texts: Sequence[object], timings: dict[str, float]) -> list[torch.Tensor | UnusableInput]:
        """Texts -> vectors, encoded as one batch; an unusable text gives its `UnusableInput` in its place."""
        with stopwatch(timings, "text_preprocess"):
            cleaned: list[str | UnusableInput] = []
            for text in texts:
                try:
                    cleaned.append(prepare_text(text))
                except UnusableInput as reason:
                    cleaned.append(reason)
        usable = [c for c in cleaned if isinstance(c, str)]
        with stopwatch(timings, "text_encode"):
            vectors = iter(self.encoders[Modality.TEXT].encode(usable)) if usable else iter(())
        return [next(vectors) if isinstance(c, str) else c for c in cleaned]

    def vision(self, image, video, timings: dict[str, float]) -> tuple[torch.Tensor, Face]:
        """An image (or, without one, a video's sampled frames) -> the vision vector and the face it came from.
        For a video the vectors of the frames with a face are averaged. Raises `UnusableInput`."""
        faces = self.find_faces(image, video, timings)
        with stopwatch(timings, "vision_encode"):
            return self.encoders[Modality.VISION].encode(faces).mean(dim=0), faces[0]
