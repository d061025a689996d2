"""Enrolment: a person's short calm recording -> their `mculora.person.PersonProfile` (`Predictor.enrol`).

What is read, per modality:

* voice: a clip's soundtrack and every voice file, each prepared as a prediction's audio is (decoded, trimmed,
  levelled), then cut into `SEGMENT_S` pieces, about one spoken sentence each: each piece with speech (by the voice
  activity detector, `mculora.preprocess.voice_activity`) gives one
  vector, so a few sentences give the statistics a few points to stand on. Less than `MIN_SPEECH_S` of speech in
  all is too short to describe a voice.
* face: a clip's frames (`FRAME_RATE` a second) and every face image. A frame or image that shows several faces
  is left out: whose face it is cannot be told. When that happens in most frames the face is refused with that
  reason.

Bad input never raises anything but `EnrolmentError`, whose message gives each modality's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mculora.encoders.featurize import Featurizer
from mculora.modalities import Modality
from mculora.person import PersonProfile
from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import MIN_SECONDS, TARGET_SAMPLE_RATE, prepare_audio
from mculora.preprocess.clip import ClipReader
from mculora.preprocess.vision import Face
from mculora.preprocess.voice_activity import no_speech_reason, speech_frames, speech_seconds

SEGMENT_S = 3.0
MIN_SPEECH_S = 3.0
# Faces change slowly in a calm recording: two frames a second see every pose without reading the same face often.
FRAME_RATE = 2.0
MAX_ENROL_SECONDS = 30.0


class EnrolmentError(ValueError):
    """Nothing in the enrolment input could describe the person; the message says why, per modality."""


@dataclass
class Capture:
    """What an enrolment read, for a person to check: a face crop, and the voice's level per segment."""

    face_crop: np.ndarray | None = None  # uint8 RGB crop of the first face used
    faces: int = 0  # frames and images whose face was used
    speech_s: float = 0.0
    segment_levels_dbfs: list[float] = field(default_factory=list)  # mean power of each voice segment's samples


def as_list(value) -> list:
    """One input or a list of them; None is none."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def enrol(featurizer: Featurizer, checkpoint: str, clip=None, image=None, audio=None) -> PersonProfile:
    """`Predictor.enrol`'s work (module docstring) with the predictor's ``featurizer``, for the checkpoint whose
    fingerprint is ``checkpoint``; call it on the predictor's torch thread."""
    clips, images, voices = as_list(clip), as_list(image), as_list(audio)
    if not (clips or images or voices):
        raise EnrolmentError("give a short calm recording of the person: a clip, face images or voice files")
    reasons: dict[str, list[str]] = {"voice": [], "face": []}
    faces: list[Face] = []
    several = 0
    soundtracks: list[np.ndarray] = []
    for path in clips:
        try:
            reader = ClipReader(path, frame_rate=FRAME_RATE, max_seconds=MAX_ENROL_SECONDS)
            found = featurizer.faces_in([rgb for _, rgb in reader.frames()])
        except UnusableInput as reason:
            reasons["voice"].append(str(reason))
            reasons["face"].append(str(reason))
            continue
        several += sum(face is not None and face.faces_seen > 1 for face in found)
        faces += [face for face in found if face is not None and face.faces_seen == 1]
        if reader.video_reason:
            reasons["face"].append(reader.video_reason)
        elif not any(found):
            reasons["face"].append(f"no face found in the clip's {len(found)} sampled frames")
        if reader.audio is None:
            reasons["voice"].append(reader.audio_reason)
        else:
            soundtracks.append(reader.audio)
    for source in images:
        try:
            face = featurizer.face_in(source)
        except UnusableInput as reason:
            reasons["face"].append(str(reason))
            continue
        if face.faces_seen > 1:
            several += 1
        else:
            faces.append(face)
    if several and several >= len(faces):
        reasons["face"].append(f"several faces in {several} frame(s) or image(s): enrol one person at a time")
        faces = []
    segments, speech_s = _voice_segments([(TARGET_SAMPLE_RATE, s) for s in soundtracks] + voices, reasons["voice"])
    if (soundtracks or voices) and not segments and not reasons["voice"]:
        reasons["voice"].append(f"no stretch of {SEGMENT_S:.0f} s held speech")
    capture = Capture()
    profile = PersonProfile(checkpoint=checkpoint)
    capture.speech_s = speech_s
    if segments and capture.speech_s < MIN_SPEECH_S:
        reasons["voice"].append(
            f"too short: {capture.speech_s:.1f} s of speech, at least {MIN_SPEECH_S:.0f} s needed "
            "(read a few sentences)"
        )
    elif segments:
        profile.add_calm(Modality.AUDIO, featurizer.encode_speech(segments))
        capture.segment_levels_dbfs = [
            float(10 * np.log10(np.mean(s.astype(np.float64) ** 2) + 1e-12)) for s in segments
        ]
    if faces:
        profile.add_calm(Modality.VISION, featurizer.encode_faces(faces))
        capture.face_crop, capture.faces = faces[0].crop, len(faces)
    if not profile.calm:
        given = {"voice": bool(clips or voices), "face": bool(clips or images)}
        why = "; ".join(f"{name}: {', '.join(dict.fromkeys(found))}" for name, found in reasons.items() if given[name])
        raise EnrolmentError(f"nothing to enrol from ({why})")
    profile.notes = [
        f"{name} not enrolled: {', '.join(dict.fromkeys(found))}"
        for name, modality in (("voice", Modality.AUDIO), ("face", Modality.VISION))
        if (found := reasons[name]) and modality not in profile.calm
    ]
    profile.capture = capture
    return profile


def _voice_segments(sources: Sequence, reasons: list[str]) -> tuple[list[np.ndarray], float]:
    """Each voice source prepared as a prediction's audio, cut into `SEGMENT_S` pieces that hold speech (by the voice
    activity detector), and the seconds of speech in those pieces."""
    segments: list[np.ndarray] = []
    speech_s = 0.0
    step = int(SEGMENT_S * TARGET_SAMPLE_RATE)
    for source in sources:
        try:
            samples = prepare_audio(source).samples
        except UnusableInput as reason:
            reasons.append(str(reason))
            continue
        speech = speech_frames(samples)
        if (found := speech_seconds(speech)) < MIN_SECONDS:
            reasons.append(no_speech_reason(found))
            continue
        for start in range(0, samples.size, step):
            if (seconds := speech_seconds(speech, start, start + step)) < MIN_SECONDS:
                continue  # a pause between sentences, or the tail of the recording
            try:
                segments.append(prepare_audio((TARGET_SAMPLE_RATE, samples[start : start + step])).samples)
            except UnusableInput:
                continue
            speech_s += seconds
    return segments, speech_s
