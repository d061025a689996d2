"""What the Gradio demo does on each event: Gradio's input values in, display values out.

`app.py` builds the page and wires these callbacks to its components. Every callback turns a missing or unusable
modality into a notice (and a `gr.Warning` when the user gave it but it could not be used), raises `gr.Error` only
when nothing usable remains, and never lets a stack trace reach the page.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from mculora.checkpoint import strip_front_matter
from mculora.encoders.featurize import DROPPED, NOT_GIVEN, UtteranceFeatures
from mculora.modalities import MODALITIES
from mculora.person import PersonProfile
from mculora.serving import clip_plots, plots
from mculora.serving.annotate import write_annotated_video
from mculora.serving.clip import ClipCancelled
from mculora.serving.clip_result import ALL, ClipResult
from mculora.serving.friendly_errors import friendly_errors
from mculora.serving.person_view import ProfileCallbacks
from mculora.serving.predictor import Prediction, Predictor

log = logging.getLogger(__name__)
HISTORY_TURNS = 6  # earlier turns kept as the model's dialogue context in conversation mode
TIMELINE_TURNS = 100  # turns the timeline shows; older ones are forgotten, so a session's memory is bounded
EXPORT_TTL_S = 3600  # ablation exports older than this are deleted (the page's own copies go with Gradio's cache)


@dataclass
class ClipJob:
    """A session's clip scoring: the Cancel button sets ``cancelled``, which the running job's progress sees."""

    cancelled: bool = False


@dataclass
class Conversation:
    """The conversation mode's memory: the last turns' features (model context) and results (timeline)."""

    features: list[UtteranceFeatures] = field(default_factory=list)
    turns: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def add(self, features: UtteranceFeatures, label: str, probabilities: dict[str, float]) -> None:
        self.features = [*self.features, features][-HISTORY_TURNS:]
        self.turns = [*self.turns, (label, probabilities)][-TIMELINE_TURNS:]


def undecoded_uploads(image: gr.Image) -> gr.Image:
    """Make an image input hand the uploaded file to the library undecoded.

    Gradio's own preprocessing opens the file with PIL, so an upload that is not an image would fail the whole event
    with a generic error; the library instead checks the size from the header and turns an unreadable file into a
    reason for leaving vision out. (The instance's method is replaced: a subclass of a Gradio component would make
    Gradio write a type stub next to this module.)"""
    decode = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return payload.path
        return decode(payload)

    image.preprocess = preprocess
    return image


def _inputs(image, audio, text, video, use_audio: bool, use_text: bool, use_vision: bool) -> dict:
    """Gradio's values -> `Predictor` keyword arguments. An empty text box is no text. API callers can send any
    JSON, so a toggle that is not a boolean is an error rather than read as true."""
    for name, value in (("use_audio", use_audio), ("use_text", use_text), ("use_vision", use_vision)):
        if not isinstance(value, bool):
            raise gr.Error(f"{name} must be true or false, not {str(value)[:40]!r}")
    dropped = [m.value for m, use in zip(MODALITIES, (use_audio, use_text, use_vision), strict=True) if not use]
    return {"image": image, "audio": audio, "text": text or None, "video": video, "drop": dropped}


def _method(value) -> str | None:
    """The method selector's value (or an API caller's): a method name, or nothing for the default."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise gr.Error(f"method must be a method's name, not {str(value)[:40]!r}")
    return value


def notices(prediction: Prediction) -> str:
    """One line per modality that was not used, and why; notes such as cut audio."""
    lines = [f"- **{modality}** not used: {reason}" for modality, reason in prediction.missing.items()]
    lines += [f"- {note}" for note in prediction.notes]
    return "\n".join(lines) if lines else "All three modalities were used."


def probability_note(predictor: Predictor) -> str:
    """What the percentages mean for this checkpoint, shown under the distribution."""
    if predictor.config.temperatures:
        return (
            "Probabilities are calibrated for each combination of modalities (temperature scaling on validation "
            "data), so that the confidence shown tracks how often the model is right. The model card's calibration "
            "table gives the remaining gap per combination."
        )
    return "These scores are the model's raw softmax, not calibrated: they overstate how sure it is."


def warn_unusable(prediction: Prediction) -> None:
    """A toast for each modality the user gave that could not be used (a dropped or absent one is no surprise)."""
    for modality, reason in prediction.missing.items():
        if reason not in (NOT_GIVEN, DROPPED):
            gr.Warning(f"{modality} left out: {reason}")


class DemoCallbacks:
    def __init__(self, predictor: Predictor, transcribe: str | None = None):
        """``transcribe``: the opt-in speech-to-text model for clips without a transcript (None: never transcribe)."""
        self.predictor = predictor
        self.transcribe = transcribe
        self.labels = predictor.labels
        self._exports = Path(tempfile.mkdtemp(prefix="mculora-exports-"))
        self.person = ProfileCallbacks(predictor)  # the Adapt to me step's events

    # -- API ---------------------------------------------------------------------------------------------------

    @friendly_errors
    def predict_api(
        self,
        image,
        audio,
        text,
        use_audio=True,
        use_text=True,
        use_vision=True,
        video=None,
        method=None,
        enrolment=None,
    ) -> dict:
        """``/predict``: the prediction as JSON (method, label, probabilities, contributions, modalities used /
        missing). ``method``: one of the loaded checkpoints' methods (default: the first). ``enrolment``: a short calm
        clip of the person: the prediction is read relative to them, with ``without_profile`` beside it."""
        prediction = self.predictor.predict(
            **_inputs(image, audio, text, video, use_audio, use_text, use_vision),
            method=_method(method),
            profile=self.person.enrolled(enrolment),
        )
        warn_unusable(prediction)
        return prediction.to_dict()

    @friendly_errors
    def ablate_api(
        self, image, audio, text, use_audio=True, use_text=True, use_vision=True, video=None, method=None
    ) -> dict:
        """``/ablate``: the input under every subset of its usable modalities, from one batched pass."""
        rows = self.predictor.predict_combinations(
            **_inputs(image, audio, text, video, use_audio, use_text, use_vision), methods=[_method(method)]
        )
        return plots.ablation_record(rows, self.labels)

    # -- page --------------------------------------------------------------------------------------------------

    @friendly_errors
    def predict_view(
        self,
        image,
        audio,
        text,
        video,
        use_audio,
        use_text,
        use_vision,
        conversation_on,
        conversation: Conversation,
        method=None,
        profile: PersonProfile | None = None,
        use_profile: bool = False,
        grow_profile: bool = False,
    ):
        """The page's main event. Returns: label, distribution plot, contribution plot, face overlay, notices,
        JSON, timeline plot, conversation state, the label without the profile, profile status. With
        ``grow_profile`` the input's vectors join the profile's session statistics (the state object itself)."""
        conversation = conversation if conversation_on and conversation is not None else Conversation()
        history = conversation.features[-HISTORY_TURNS:] if conversation_on else []
        personal = profile if use_profile else None
        prediction = self.predictor.predict(
            **_inputs(image, audio, text, video, use_audio, use_text, use_vision),
            history=history,
            method=_method(method),
            profile=personal,
        )
        warn_unusable(prediction)
        if personal is not None and grow_profile:
            personal.update(prediction)
        if conversation_on:
            conversation.add(prediction.features, prediction.label, prediction.probabilities)
        face = prediction.features.face
        return (
            prediction.probabilities,
            plots.emotion_distribution(prediction),
            plots.adapter_contributions(prediction),
            plots.face_overlay(face) if face is not None else None,
            notices(prediction),
            prediction.to_dict(),
            plots.conversation_timeline(conversation.turns, self.labels) if conversation_on else None,
            conversation,
            prediction.without_profile,
            self.person.status(profile),
        )

    @friendly_errors
    def live_view(
        self, frame, audio, text, use_audio, use_text, use_vision, method=None, profile=None, use_profile=False
    ):
        """A webcam stream tick: the light outputs only (label, distribution, face overlay, label without the
        profile). Live frames never grow the profile: a stream would fill it with one moment."""
        prediction = self.predictor.predict(
            **_inputs(frame, audio, text, None, use_audio, use_text, use_vision),
            method=_method(method),
            profile=profile if use_profile else None,
        )
        face = prediction.features.face
        overlay = plots.face_overlay(face) if face is not None else None
        return prediction.probabilities, plots.emotion_distribution(prediction), overlay, prediction.without_profile

    @friendly_errors
    def ablate_view(
        self,
        image,
        audio,
        text,
        video,
        use_audio,
        use_text,
        use_vision,
        method=None,
        side_by_side=False,
        profile=None,
        use_profile=False,
    ):
        """Heatmap, table and the two export files of the ablation: of the selected method, or of every loaded
        method side by side; with the profile, its rows beside the rows without it."""
        inputs = _inputs(image, audio, text, video, use_audio, use_text, use_vision)
        methods = self.predictor.methods if side_by_side else [_method(method)]
        rows = self.predictor.predict_combinations(**inputs, methods=methods)
        if use_profile and profile is not None:
            personal = self.predictor.predict_combinations(**inputs, methods=methods, profile=profile)
            rows = [dataclasses.replace(row, method=f"{row.method}, your profile") for row in personal] + rows
        folder = self._export_folder()
        csv_path, json_path = folder / "ablation.csv", folder / "ablation.json"
        csv_path.write_text(plots.ablation_csv(rows, self.labels))
        json_path.write_text(plots.ablation_json(rows, self.labels))
        table = plots.ablation_table(rows, self.labels)
        return plots.ablation_heatmap(rows, self.labels), table, str(csv_path), str(json_path)

    # -- clips -------------------------------------------------------------------------------------------------

    def _score_clip(
        self, clip, transcript, text, use_audio, use_text, use_vision, methods, progress, profile=None
    ) -> ClipResult:
        if clip is not None and not isinstance(clip, str):
            raise gr.Error(f"clip must be a video or audio file, not {str(clip)[:40]!r}")
        if clip is None:
            raise gr.Error("no clip given: record one with the webcam or upload a video")
        inputs = _inputs(None, None, text, None, use_audio, use_text, use_vision)
        return self.predictor.predict_clip(
            clip,
            transcript=transcript,
            text=inputs["text"],
            methods=methods,
            drop=inputs["drop"],
            progress=progress,
            transcribe=self.transcribe,
            profile=profile,
        )

    @friendly_errors
    def clip_api(
        self,
        clip,
        transcript=None,
        text=None,
        use_audio=True,
        use_text=True,
        use_vision=True,
        method=None,
        enrolment=None,
    ):
        """``/predict_clip``: the clip's windows with every combination's probabilities, and the pooled summary.
        ``enrolment``: a short calm clip of the person: the windows are read relative to them."""
        methods, profile = [_method(method)], self.person.enrolled(enrolment)
        return self._score_clip(
            clip, transcript, text, use_audio, use_text, use_vision, methods, None, profile
        ).to_dict()

    @friendly_errors
    def clip_view(
        self,
        clip,
        transcript,
        text,
        use_audio,
        use_text,
        use_vision,
        method,
        side_by_side,
        job: ClipJob,
        profile: PersonProfile | None = None,
        use_profile: bool = False,
        progress=gr.Progress(),  # noqa: B008 (Gradio finds its progress tracker by this default)
    ):
        """The Clip tab: summary, timeline, combination strip, per-window table, CSV and JSON, and the result (state)
        for re-plotting and the annotated video. Cancel sets ``job.cancelled``, which stops the work at its next
        progress report."""
        job.cancelled = False

        def report(fraction: float, stage: str) -> None:
            if job.cancelled:
                raise ClipCancelled
            progress(fraction, desc=stage)

        methods = self.predictor.methods if side_by_side else [_method(method)]
        personal = profile if use_profile else None
        result = self._score_clip(clip, transcript, text, use_audio, use_text, use_vision, methods, report, personal)
        folder = self._export_folder()
        csv_path, json_path = folder / "clip.csv", folder / "clip.json"
        csv_path.write_text(result.csv())
        json_path.write_text(result.json())
        shown = _method(method) or result.methods[0]  # the timeline and table follow the method selector
        return (
            clip_summary(result),
            clip_plots.clip_timeline(result, shown),
            clip_plots.clip_strip(result, result.methods),
            clip_plots.clip_table(result, shown),
            str(csv_path),
            str(json_path),
            result,
        )

    @staticmethod
    def cancel_clip(job: ClipJob) -> None:
        job.cancelled = True

    @friendly_errors
    def clip_timeline_view(self, result: ClipResult | None, combination: str, method=None):
        """Re-plot the timeline for another combination or method (no re-scoring; a method the clip was not scored
        with shows the first one scored)."""
        if result is None:
            return None
        method = _method(method) if _method(method) in result.methods else result.methods[0]
        return clip_plots.clip_timeline(result, method, combination or ALL)

    @friendly_errors
    def annotated_video_view(self, clip, result: ClipResult | None, combination: str):
        """The clip with the scores drawn on and its own soundtrack, as an MP4 to download."""
        if result is None or clip is None:
            raise gr.Error("score a clip first")
        path = self._export_folder() / f"{Path(clip).stem}.annotated.mp4"
        return str(write_annotated_video(clip, result, path, combination=combination or ALL))

    def _export_folder(self) -> Path:
        self._delete_old_exports()
        return Path(tempfile.mkdtemp(dir=self._exports))

    def _delete_old_exports(self) -> None:
        """Gradio serves copies of the export files from its own cache, so the originals are only needed briefly."""
        for folder in self._exports.iterdir():
            if time.time() - folder.stat().st_mtime > EXPORT_TTL_S:
                shutil.rmtree(folder, ignore_errors=True)

    def example_view(self, image, audio, text):
        """The bundled examples with every modality switched on (cached lazily by Gradio): label, distribution,
        contributions, notices and JSON. The face image is left out because Gradio's example cache cannot store an
        empty image (an example without a face)."""
        label, distribution, contributions, _, notes, raw, *_ = self.predict_view(
            image, audio, text, None, True, True, True, False, None
        )
        return label, distribution, contributions, notes, raw

    @staticmethod
    def reset_conversation():
        return Conversation(), None


def clip_summary(result: ClipResult) -> str:
    """The clip's pooled label per method, what its windows had, and its notes."""
    windows = result.windows
    lines = [
        f"**{method}: {result.label(method)}** (windows pooled by certainty; every modality each window has)"
        for method in result.methods
    ]
    if result.without_profile is not None:
        lines += [
            f"without your profile, {method}: {max(pooled[ALL], key=pooled[ALL].get)}"
            for method, pooled in result.without_profile.items()
        ]
    lines.append(
        f"{len(windows)} windows of {result.window_s:g} s every {result.hop_s:g} s over {result.duration_s:.1f} s: "
        f"a face in {sum(w.face for w in windows)}, speech in {sum(w.speech for w in windows)}, "
        f"text in {sum(w.text is not None for w in windows)}."
    )
    if any(w.faces_seen > 1 for w in windows):
        lines.append("Some frames show more than one face: the largest one is scored.")
    lines += [f"- {note}" for note in result.notes]
    return "\n\n".join(lines)


def model_card_markdown(checkpoint: Path) -> str:
    """The checkpoint's model card for the page (its figure links are relative files, so they are dropped)."""
    card = checkpoint / "README.md"
    if not card.is_file():
        return f"No model card found in `{checkpoint}`."
    # A card published to the Hub starts with YAML metadata, which is for the Hub, not for readers.
    text = strip_front_matter(card.read_text())
    lines = [line for line in text.splitlines() if not line.startswith("![")]
    return f"Checkpoint: `{checkpoint}`\n\n" + "\n".join(lines)
