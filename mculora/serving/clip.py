"""A recorded clip scored window by window under every combination of the modalities each window has.

    result = predictor.predict_clip("talk.mp4", transcript="talk.srt")
    result.summary["mcu-lora"]["all"], result.windows[3].rows

(`mculora.serving.clip_result` holds what comes back, `mculora.serving.clip_command` the command line.)

How a clip is read: the video stream and the soundtrack are decoded together as a stream (`mculora.preprocess.clip`).
Faces are searched on a grid of `FRAME_RATE` frames per second, each frame encoded as it comes, so only feature
vectors are kept. The clip is then cut into windows of ``window_s`` seconds every ``hop_s`` seconds. Per window:

* vision: its frames that show a face, pooled so that an expression held for half a second is not averaged away
  (`mculora.serving.window_pooling`; each frame's weight is recorded); the largest face of a frame is scored and the
  window reports how many faces its frames showed at most; or missing with the reason;
* audio: its stretch of the soundtrack, when it holds speech: at least `MIN_SECONDS` of it in the frames a voice
  activity detector marks as speech in the whole soundtrack (`mculora.preprocess.voice_activity`: a pause, a tone,
  music or a fan is not speech, however loud);
* text: the transcript cues that overlap it, or the typed sentence for every window, or none;
* one batched pass per window and method over every non-empty subset of its usable modalities.

The clip-level summary is not a mean of frames: per method and combination it pools the windows' probabilities with
weights equal to each window's certainty, 1 - entropy / log(classes), so a window where the face or voice is clearly
expressive outweighs the neutral onset and offset of a sentence. "all" pools each window's prediction from every
modality it has. The per-window rows stay beside the summary in every export.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch

from mculora.encoders.featurize import DROPPED, NOT_GIVEN, Featurizer, UtteranceFeatures, as_modality, stopwatch
from mculora.modalities import Modality
from mculora.person import PersonProfile
from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import MIN_SECONDS, SILENCE_PEAK_DBFS, TARGET_SAMPLE_RATE
from mculora.preprocess.clip import ClipReader
from mculora.preprocess.transcript import Cue, read_transcript, window_texts
from mculora.preprocess.voice_activity import no_speech_reason, speech_frames, speech_seconds
from mculora.serving.clip_result import ALL, ClipResult, ClipWindow, FaceTrack
from mculora.serving.prediction import CombinationRow
from mculora.serving.window_pooling import window_vision

WINDOW_S, HOP_S = 2.0, 1.0
# A window must hold a syllable or two and a change of expression; beyond 10 s it is a clip-level average again.
MIN_WINDOW_S, MAX_WINDOW_S = 0.5, 10.0
MIN_HOP_S = 0.25
# 120 s at the smallest hop; bounds the rows a request can make (windows x 7 combinations x methods).
MAX_WINDOWS = 480
_FACE_BATCH = 16  # face crops encoded at once (each crop is 150 kB; a clip's frames are never all held)


T = TypeVar("T")


class ClipCancelled(Exception):
    """Raised by a progress callback to stop scoring a clip."""


class ClipScorer(Protocol):
    """What scoring a clip needs of a `Predictor`: its public face."""

    labels: list[str]
    device: torch.device
    featurizer: Featurizer

    def on_model_thread(self, fn: Callable[..., T], *args, **kwargs) -> T: ...

    def method_names(self, methods: Sequence[str | None] | None) -> list[str]: ...

    def combination_rows(
        self,
        current: UtteranceFeatures,
        history: Sequence[UtteranceFeatures] = (),
        methods: Sequence[str | None] | None = None,
        profile: PersonProfile | None = None,
    ) -> list[CombinationRow]: ...


def window_spans(duration_s: float, window_s: float = WINDOW_S, hop_s: float = HOP_S) -> list[tuple[float, float]]:
    """Windows of ``window_s`` every ``hop_s`` from 0, the last one ending at the clip's end; a clip shorter than
    a window is one window. Raises ValueError for sizes outside the documented ranges or too many windows."""
    if not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window_s must be {MIN_WINDOW_S} to {MAX_WINDOW_S} s, got {window_s}")
    if not MIN_HOP_S <= hop_s <= window_s:
        raise ValueError(f"hop_s must be {MIN_HOP_S} s to window_s ({window_s} s), got {hop_s}")
    count = 1 if duration_s <= window_s else math.ceil((duration_s - window_s) / hop_s - 1e-9) + 1
    if count > MAX_WINDOWS:
        raise ValueError(f"{count} windows of {window_s} s every {hop_s} s: at most {MAX_WINDOWS}; use a longer hop")
    return [(k * hop_s, min(k * hop_s + window_s, duration_s)) for k in range(count)]


def score_clip(
    predictor: ClipScorer,
    clip: str | Path,
    transcript: str | Path | None = None,
    text: str | None = None,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    methods: Sequence[str | None] | None = None,
    drop: Sequence[Modality | str] = (),
    progress: Callable[[float, str], None] | None = None,
    transcribe: str | Path | None = None,
    profile: PersonProfile | None = None,
) -> ClipResult:
    """`Predictor.predict_clip`'s work (see the module docstring). It runs on the calling thread: decoding, face
    finding and the voice activity detector there, and each piece of model work (16 face crops, a window's speech, the
    texts, a window's combinations) as one short call on the Predictor's torch thread, so that predictions queued
    there run between them instead of waiting for the whole clip.
    ``transcribe``: a speech-to-text model (`mculora.serving.transcribe`, opt-in) for the text without a transcript."""
    window_spans(window_s, window_s, hop_s)  # refuse bad sizes before decoding anything
    method_names = predictor.method_names(methods)  # an unknown method fails before any work
    dropped = {as_modality(m) for m in drop}
    report = progress or (lambda fraction, stage: None)
    timings: dict[str, float] = {}
    cues = read_transcript(transcript) if transcript is not None and Modality.TEXT not in dropped else None

    reader = ClipReader(clip)
    on_model = predictor.on_model_thread
    frames, tracks = _face_frames(
        predictor.featurizer, reader, Modality.VISION not in dropped, timings, report, on_model
    )
    spans = window_spans(reader.duration_s, window_s, hop_s)
    notes = list(reader.notes)
    if cues is not None and (late := sum(cue.start >= reader.duration_s for cue in cues)):
        notes.append(
            f"{late} transcript cue(s) start after the clip's end ({reader.duration_s:.1f} s) and were ignored"
        )
    if cues is not None and text:
        notes.append("both a transcript and a sentence were given: the transcript's text is used")
    elif cues is None and not text and transcribe is not None and Modality.TEXT not in dropped:
        cues = on_model(_transcribed, reader, transcribe, predictor.device, notes, timings, report)

    windows = [ClipWindow(i, start, end, False, 0, False, None, {}) for i, (start, end) in enumerate(spans)]
    vectors: list[dict[Modality, torch.Tensor]] = [{} for _ in spans]
    on_model(window_vision, windows, vectors, frames, reader.video_reason, dropped, predictor.featurizer.face_logits)
    _audio(predictor.featurizer, windows, vectors, reader, dropped, timings, on_model)
    _text(predictor.featurizer, windows, vectors, cues, text, dropped, timings, on_model)
    report(0.9, "scoring windows")
    plain: list[ClipWindow] = []  # with a profile: the windows as scored without it
    with stopwatch(timings, "model"):
        for window, usable in zip(windows, vectors, strict=True):
            if usable:
                features = UtteranceFeatures(usable, {})
                window.rows = on_model(predictor.combination_rows, features, (), method_names, profile)
                if profile is not None:
                    plain.append(replace(window, rows=on_model(predictor.combination_rows, features, (), method_names)))
    report(1.0, "done")
    if not any(window.rows for window in windows):
        reasons = "; ".join(f"{m}: {r}" for m, r in windows[0].missing.items())
        raise UnusableInput(f"nothing in clip {reader.name} could be scored ({reasons})")
    return ClipResult(
        name=reader.name,
        duration_s=reader.duration_s,
        window_s=window_s,
        hop_s=hop_s,
        labels=list(predictor.labels),
        methods=method_names,
        windows=windows,
        summary={method: _pooled(windows, method, predictor.labels) for method in method_names},
        notes=notes,
        timings_ms=timings,
        tracks=tracks,
        without_profile={m: _pooled(plain, m, predictor.labels) for m in method_names} if profile is not None else None,
    )


def _face_frames(
    featurizer: Featurizer,
    reader: ClipReader,
    want_faces: bool,
    timings: dict[str, float],
    report: Callable[[float, str], None],
    on_model: Callable,
) -> tuple[list[tuple[float, torch.Tensor | None, int]], list[FaceTrack]]:
    """Decode the clip; for each sampled frame ``(time, vision vector or None, faces seen)``, and the face tracks."""
    frames: list[tuple[float, torch.Tensor | None, int]] = []
    pending: list[tuple[float, object]] = []
    tracks: list[FaceTrack] = []
    expected = reader.expected_seconds

    def encode_pending() -> None:
        with stopwatch(timings, "face_encode"):
            encoded = on_model(featurizer.encode_faces, [face for _, face in pending])
        frames.extend((time, vector, face.faces_seen) for (time, face), vector in zip(pending, encoded, strict=True))
        pending.clear()

    iterator = reader.frames()
    while True:
        with stopwatch(timings, "decode"):
            item = next(iterator, None)
        if item is None:
            break
        time, rgb = item
        # A clip that declares no length (a browser's recording) reports how much of the file has been read.
        done = min(1.0, time / expected) if expected else reader.read_fraction
        report(0.85 * done, f"reading the clip: {time:.0f} s")
        if not want_faces:
            continue
        with stopwatch(timings, "face_detect"):
            try:
                face = featurizer.face_in(rgb)
            except UnusableInput:
                face = None
        if face is None:
            frames.append((time, None, 0))
        else:
            tracks.append(FaceTrack(time, face.box, face.image_size))
            pending.append((time, face))
            if len(pending) == _FACE_BATCH:
                encode_pending()
    if pending:
        encode_pending()
    frames.sort(key=lambda frame: frame[0])
    return frames, tracks


def _transcribed(
    reader: ClipReader,
    model: str | Path,
    device: torch.device,
    notes: list[str],
    timings: dict[str, float],
    report: Callable[[float, str], None],
) -> list[Cue] | None:
    """Cues from the opt-in speech-to-text model, or None (with a note) when the clip has no sound to transcribe."""
    from mculora.serving.transcribe import transcribe

    if reader.audio is None:
        notes.append(f"nothing to transcribe: {reader.audio_reason}")
        return None
    report(0.86, "transcribing the soundtrack")
    with stopwatch(timings, "transcribe"):
        cues = transcribe(reader.audio, model, device)
    notes.append(f"the text is a machine transcript by {model} ({len(cues)} cues)")
    return cues


def _audio(
    featurizer: Featurizer,
    windows: list[ClipWindow],
    vectors: list[dict[Modality, torch.Tensor]],
    reader: ClipReader,
    dropped: set[Modality],
    timings: dict[str, float],
    on_model: Callable,
) -> None:
    if Modality.AUDIO in dropped or reader.audio is None:
        reason = DROPPED if Modality.AUDIO in dropped else reader.audio_reason
        for window in windows:
            window.missing[Modality.AUDIO.value] = reason
        return
    if float(np.abs(reader.audio).max()) < 10 ** (SILENCE_PEAK_DBFS / 20):
        for window in windows:
            window.missing[Modality.AUDIO.value] = f"the soundtrack is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS)"
        return
    speech = speech_frames(reader.audio)
    for window, usable in zip(windows, vectors, strict=True):
        first, last = (int(t * TARGET_SAMPLE_RATE) for t in (window.start, window.end))
        if (seconds := speech_seconds(speech, first, last)) < MIN_SECONDS:
            window.missing[Modality.AUDIO.value] = no_speech_reason(seconds, "this window")
            continue
        try:
            prepared = featurizer.prepare_audio((TARGET_SAMPLE_RATE, reader.audio[first:last]), timings, [])
            with stopwatch(timings, "audio_encode"):
                usable[Modality.AUDIO] = on_model(featurizer.encode_speech, [prepared.samples])[0]
            window.speech = True
        except UnusableInput as reason:
            window.missing[Modality.AUDIO.value] = str(reason)


def _text(
    featurizer: Featurizer,
    windows: list[ClipWindow],
    vectors: list[dict[Modality, torch.Tensor]],
    cues: list[Cue] | None,
    text: str | None,
    dropped: set[Modality],
    timings: dict[str, float],
    on_model: Callable,
) -> None:
    if Modality.TEXT in dropped:
        for window in windows:
            window.missing[Modality.TEXT.value] = DROPPED
        return
    if cues is not None:
        texts = window_texts(cues, [(w.start, w.end) for w in windows])
        absent = "no transcript cue overlaps this window"
    else:
        texts = [text or None] * len(windows)
        absent = NOT_GIVEN
    distinct = sorted({t for t in texts if t is not None})
    encoded = dict(zip(distinct, on_model(featurizer.texts, distinct, timings), strict=True))
    for window, usable, window_text in zip(windows, vectors, texts, strict=True):
        window.text = window_text
        vector = encoded.get(window_text) if window_text is not None else UnusableInput(absent)
        if isinstance(vector, UnusableInput):
            window.missing[Modality.TEXT.value] = str(vector)
        else:
            usable[Modality.TEXT] = vector


def _pooled(windows: Sequence[ClipWindow], method: str, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per combination (and "all"): the certainty-weighted mean of the windows' probabilities."""
    pooled = {}
    combinations = [ALL, *dict.fromkeys(r.combination for w in windows for r in w.rows if r.method == method)]
    for combination in combinations:
        rows = [row for w in windows if (row := w.row(method, combination)) is not None]
        probabilities = np.array([[row.probabilities[label] for label in labels] for row in rows])
        entropy = -(probabilities * np.log(np.clip(probabilities, 1e-12, 1.0))).sum(axis=1)
        weights = np.clip(1.0 - entropy / math.log(len(labels)), 1e-6, None)
        mean = (weights[:, None] * probabilities).sum(axis=0) / weights.sum()
        pooled[combination] = {label: float(p) for label, p in zip(labels, mean, strict=True)}
    return pooled
