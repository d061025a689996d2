"""From raw media to an emotion prediction: preprocessing, encoders and the MCULoRA model behind one call.

    predictor = Predictor.from_pretrained("checkpoints/default")
    prediction = predictor.predict(image="face.jpg", audio="speech.wav", text="I can't believe it!")
    prediction.label, prediction.probabilities, prediction.missing, prediction.contributions

    # read relative to one person: enrol them from a short calm recording, then pass the profile
    profile = predictor.enrol(clip="me_reading_calmly.mp4")
    prediction = predictor.predict(image="face.jpg", audio="speech.wav", profile=profile)
    prediction.probabilities, prediction.without_profile      # with the profile, and beside it without
    profile.update(prediction)                                 # let the person's own inputs grow it (opt-in)

    # other methods' checkpoints over the same encoders: the same input through any of them
    predictor = Predictor.from_pretrained("checkpoints/default", compare_with=["checkpoints/mplmm"])
    predictor.predict(text="I can't believe it!", method="mplmm")
    predictor.predict_combinations(text="I can't believe it!", methods=predictor.methods)

Each modality is optional. One that is not given, that the user drops, or that turns out unusable (no face,
silent audio, empty text) is left out with the reason, and the model routes the rest to the adapters of the
combination that remains.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import torch

from mculora import hub_download
from mculora.checkpoint import CheckpointConfig, CheckpointError, load_checkpoint
from mculora.device import select_device
from mculora.encoders import Encoder, build_encoders, check_encoders
from mculora.encoders.featurize import Featurizer, PreparedInputs, UtteranceFeatures, stopwatch
from mculora.lora import adapter_layers
from mculora.modalities import MODALITIES, Modality, combination_name
from mculora.model import ModelOutput
from mculora.person import REFERENCE_FILE, PersonProfile, PersonReference, ProfileError, checkpoint_fingerprint
from mculora.serving import enrolment
from mculora.serving.clip import score_clip
from mculora.serving.clip_result import ClipResult
from mculora.serving.prediction import CombinationRow, Contributions, Prediction
from mculora.serving.torch_thread import TorchThread, on_torch_thread

T = TypeVar("T")


class NothingToPredict(ValueError):
    """No modality is usable; the message lists why each one is missing."""


class UnknownMethod(ValueError):
    """A method the predictor has no checkpoint for; the message lists the ones it has."""


class MethodNetwork(NamedTuple):
    """One method's loaded network and its checkpoint's config."""

    network: torch.nn.Module
    config: CheckpointConfig


@dataclass
class _Request:
    """One `Predictor.predict` call after its inputs are decoded: what the torch thread needs to finish it."""

    prepared: PreparedInputs
    history: tuple[UtteranceFeatures, ...]
    network: torch.nn.Module
    settings: CheckpointConfig
    start: float  # time.perf_counter() when the call began
    profile: PersonProfile | None = None


class Predictor:
    """A loaded checkpoint with its encoders. Build it once (``from_pretrained``) and call ``predict`` many times.

    Checkpoints of other training methods over the same encoders and labels (``others``) are served beside it: the
    input is encoded once and ``method=`` picks the network. The first checkpoint's method is the default."""

    def __init__(
        self,
        model: torch.nn.Module,
        config,
        encoders: dict[Modality, Encoder],
        device: torch.device,
        others: Sequence[tuple[torch.nn.Module, object]] = (),
        torch_thread: TorchThread | None = None,
        reference: PersonReference | None = None,
        fingerprint: str = "",
    ) -> None:
        """``reference``: the checkpoint's `PersonReference` (profiles need one); ``fingerprint``: the checkpoint's
        `checkpoint_fingerprint`, which the profiles made here carry and every profile given is checked against."""
        # Where predictions run: the caller's thread, or one a server gives every Predictor (`TorchThread`).
        self.torch_thread = torch_thread
        self.models: dict[str, tuple[torch.nn.Module, object]] = {}
        for network, settings in ((model, config), *others):
            if settings.task != "classification":
                raise CheckpointError("the Predictor serves emotion classification checkpoints; this one is regression")
            check_encoders(settings.encoders, encoders)
            if list(settings.label_names) != list(config.label_names):
                raise CheckpointError(
                    f"the {settings.method} checkpoint predicts {list(settings.label_names)}, not the labels of "
                    f"the first checkpoint ({list(config.label_names)}); methods are compared on one label set"
                )
            if settings.method in self.models:
                raise CheckpointError(f"two checkpoints of method {settings.method!r}: give one per method")
            self.models[settings.method] = (network.to(device).eval(), settings)
        # Which networks carry MCULoRA's adapters (a peer's whole logit is its base term), for the contributions.
        self._has_adapters = {method: bool(adapter_layers(network)) for method, (network, _) in self.models.items()}
        self.model, self.config, self.device = self.models[config.method][0], config, device
        self.featurizer = Featurizer(encoders)
        self.labels = list(config.label_names)
        self.reference, self.fingerprint = reference, fingerprint

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        compare_with: Iterable[str | Path] = (),
        torch_thread: TorchThread | None = None,
    ) -> Predictor:
        """Load ``path`` and the encoders recorded in it, on ``device`` (default: chosen once from MCULORA_DEVICE,
        else CUDA, else CPU). ``path`` is a checkpoint directory, or ``owner/name[@revision]`` on the Hugging Face Hub
        (downloaded once, then cached; see `mculora.hub_download`). ``compare_with``: checkpoints of other methods over
        the same encoders (only their networks are loaded; the encoders are shared). ``torch_thread``: load and predict
        on that thread, whichever thread calls (a server's choice, `mculora.serving.torch_thread`; the app makes one).
        Loading changes nothing process-wide: a server may also call `mculora.serving.allocator.keep_freed_memory`."""
        if torch_thread is not None and not torch_thread.is_current():
            return torch_thread.run(cls.from_pretrained, path, device, compare_with, torch_thread)
        device = select_device(device)
        directory = hub_download.resolve(path)
        model, config = load_checkpoint(directory, device)
        others = [load_checkpoint(hub_download.resolve(other), device) for other in compare_with]
        encoders = build_encoders(config.encoders["profile"], device, weights=directory)
        reference_path = directory / REFERENCE_FILE
        reference = (
            PersonReference.load(reference_path, config.model.feature_dims) if reference_path.is_file() else None
        )
        fingerprint = checkpoint_fingerprint(directory)
        return cls(model, config, encoders, device, others, torch_thread, reference, fingerprint)

    @property
    def methods(self) -> list[str]:
        """The methods this predictor can run, the default first."""
        return list(self.models)

    def network(self, method: str | None) -> MethodNetwork:
        """``method``'s network and config (None: the default); `UnknownMethod` if it is not loaded."""
        if method is None:
            return MethodNetwork(*self.models[self.config.method])
        if method not in self.models:
            raise UnknownMethod(f"no checkpoint for method {method!r}; this predictor has: {', '.join(self.models)}")
        return MethodNetwork(*self.models[method])

    def on_model_thread(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)`` on this Predictor's torch thread (in place without one): how work that holds the
        model only in short pieces, like scoring a clip, hands over each piece, so queued predictions run between."""
        if self.torch_thread is None:
            return fn(*args, **kwargs)
        return self.torch_thread.run(fn, *args, **kwargs)

    def method_names(self, methods: Sequence[str | None] | None) -> list[str]:
        """``methods`` by name (None, or a None among them: the default); `UnknownMethod` for one not loaded."""
        return [self.network(method).config.method for method in (methods or [None])]

    # -- people -------------------------------------------------------------------------------------------------

    @on_torch_thread
    def enrol(self, clip=None, image=None, audio=None) -> PersonProfile:
        """A `PersonProfile` from a short calm recording of one person: ``clip`` (a 5-20 s video with face and
        voice), ``image`` (face images), ``audio`` (voice files); each one input or a list. What was read is in
        ``profile.capture``, what was left out in ``profile.notes``. Raises `enrolment.EnrolmentError` with the
        reason when nothing is usable (no face, silence, too short, several people), `ProfileError` when this
        checkpoint has no person reference."""
        self._check_reference()
        return enrolment.enrol(self.featurizer, self.fingerprint, clip=clip, image=image, audio=audio)

    def _check_reference(self) -> None:
        if self.reference is None:
            raise ProfileError(
                f"this checkpoint has no person reference ({REFERENCE_FILE}); build it with "
                "python -m mculora.recipes.person_adaptation --checkpoint DIR"
            )

    def _check_profile(self, profile: PersonProfile | None) -> None:
        if profile is not None:
            self._check_reference()
            profile.check_checkpoint(self.fingerprint)

    def _adapted(self, utterances: Sequence[UtteranceFeatures], profile: PersonProfile) -> list[UtteranceFeatures]:
        """``utterances`` with their vectors read relative to ``profile`` (`PersonReference.adapt`)."""
        return [dataclasses.replace(u, vectors=self.reference.adapt(u.vectors, profile)) for u in utterances]

    # -- model --------------------------------------------------------------------------------------------------

    def _model_inputs(
        self, dialogues: Sequence[Sequence[UtteranceFeatures]], masks: torch.Tensor
    ) -> tuple[dict[Modality, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Features [B, L, D] of B dialogues of L utterances each (the last one the current), row b under mask b."""
        batch, length = masks.shape[0], len(dialogues[0])
        dims = self.config.model.feature_dims
        features = {m: torch.zeros(batch, length, dims[m.value]) for m in MODALITIES}
        available = torch.zeros(batch, length, len(MODALITIES), dtype=torch.bool)
        for row, utterances in enumerate(dialogues):
            for position, utterance in enumerate(utterances):
                for i, m in enumerate(MODALITIES):
                    if m in utterance.vectors:
                        features[m][row, position] = utterance.vectors[m]
                        available[row, position, i] = True
        features = {m: f.to(self.device) for m, f in features.items()}
        return features, available.to(self.device), torch.ones(batch, length, dtype=torch.bool, device=self.device)

    @torch.inference_mode()
    def _forward(self, network: torch.nn.Module, dialogues: Sequence[Sequence[UtteranceFeatures]], masks: torch.Tensor):
        features, available, utterance_mask = self._model_inputs(dialogues, masks)
        return network(features, utterance_mask, masks.to(self.device), available)

    def predict(
        self,
        image=None,
        audio=None,
        text: str | None = None,
        video: str | Path | None = None,
        drop: Iterable[Modality | str] = (),
        history: Sequence[UtteranceFeatures] = (),
        method: str | None = None,
        profile: PersonProfile | None = None,
    ) -> Prediction:
        """Predict the emotion of one utterance. ``history`` (earlier utterances' ``Prediction.features``) becomes
        the attention context, as in the dialogue benchmarks. ``method``: one of `methods` (default: the first).
        ``profile``: read the input relative to that person (`enrol`); the prediction then also carries
        ``without_profile``. Raises `NothingToPredict` if nothing is usable, `UnknownMethod` for a method without a
        checkpoint, `ProfileError` for a profile of another checkpoint."""
        start = time.perf_counter()
        network, settings = self.network(method)  # an unknown method fails before any work
        self._check_profile(profile)
        prepared = self._usable_inputs(image, audio, text, video, drop)
        request = _Request(prepared, tuple(history), network, settings, start, profile)
        if self.torch_thread is None:
            return self._predict_batch([request])[0]
        # Requests that queue on the torch thread while it is busy are encoded and run as one batch.
        return self.torch_thread.gather(self._predict_batch, request)

    def _predict_batch(self, requests: Sequence[_Request]) -> list[Prediction]:
        """`predict` after the inputs are decoded, on the torch thread: one call per encoder for every request, and
        one network pass per network over the requests without history (a dialogue runs alone). A request with a
        profile adds a row read relative to the person to that pass, beside its row without."""
        encoded = self.featurizer.encode_many([request.prepared for request in requests])
        groups: dict[tuple[str, int], list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault((request.settings.method, i if request.history else -1), []).append(i)
        predictions: list[Prediction | None] = [None] * len(requests)
        for rows in groups.values():
            network, settings = requests[rows[0]].network, requests[rows[0]].settings
            dialogues = [[*requests[i].history, encoded[i]] for i in rows]
            personal = [i for i in rows if requests[i].profile is not None]
            dialogues += [self._adapted(dialogues[rows.index(i)], requests[i].profile) for i in personal]
            used = [[m for m in MODALITIES if m in encoded[i].vectors] for i in [*rows, *personal]]
            masks = torch.tensor([[m in mine for m in MODALITIES] for mine in used])
            model_ms: dict[str, float] = {}
            with stopwatch(model_ms, "model"):
                output = self._forward(network, dialogues, masks)
            names = [combination_name(mine) for mine in used]
            probabilities = self._probabilities(settings, output.logits[:, -1], names)
            for row, i in enumerate(rows):
                timings = {
                    **encoded[i].timings_ms,
                    **model_ms,
                    "total": (time.perf_counter() - requests[i].start) * 1e3,
                }
                if i in personal:
                    with_profile = len(rows) + personal.index(i)
                    prediction = self._prediction(
                        encoded[i], output, with_profile, probabilities[with_profile], settings, timings
                    )
                    prediction.without_profile = self._per_label(probabilities[row])
                else:
                    prediction = self._prediction(encoded[i], output, row, probabilities[row], settings, timings)
                predictions[i] = prediction
        return predictions

    def _per_label(self, probabilities: torch.Tensor) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probabilities, strict=True)}

    def _prediction(
        self,
        current: UtteranceFeatures,
        output: ModelOutput,
        row: int,
        probabilities: torch.Tensor,
        settings: CheckpointConfig,
        timings: dict[str, float],
    ) -> Prediction:
        """The `Prediction` of row ``row`` of a network's output, whose current utterance is ``current``."""

        def per_class(values: torch.Tensor) -> dict[str, float]:
            return {label: float(v) for label, v in zip(self.labels, values[row, -1].float().cpu(), strict=True)}

        used = [m for m in MODALITIES if m in current.vectors]
        contributions = Contributions(
            combination=combination_name(used),
            base=per_class(output.base),
            shared=per_class(output.shared),
            adapter=per_class(output.combination_term),
            logits=per_class(output.logits),
            combination_specific={
                m.value: float(v) for m, v in zip(MODALITIES, output.specific_share[row].cpu(), strict=True)
            },
            adapters=self._has_adapters[settings.method],
        )
        return Prediction(
            label=self.labels[int(probabilities.argmax())],
            probabilities=self._per_label(probabilities),
            used=[m.value for m in used],
            missing={m.value: reason for m, reason in current.missing.items()},
            contributions=contributions,
            timings_ms=timings,
            notes=current.notes,
            features=current,
            method=settings.method,
        )

    def predict_combinations(
        self,
        image=None,
        audio=None,
        text: str | None = None,
        video: str | Path | None = None,
        drop: Iterable[Modality | str] = (),
        history: Sequence[UtteranceFeatures] = (),
        methods: Sequence[str | None] | None = None,
        profile: PersonProfile | None = None,
    ) -> list[CombinationRow]:
        """The same input under every non-empty subset of its usable modalities, in one batched forward pass per
        method; ``methods`` (default, or a None among them: the first) are run on one encoding of the input, their rows
        one after another. ``profile``: read relative to that person (`enrol`)."""
        names = self.method_names(methods)
        self._check_profile(profile)
        prepared = self._usable_inputs(image, audio, text, video, drop)
        return self._combination_rows_of(prepared, history, names, profile)

    @on_torch_thread
    def _combination_rows_of(
        self,
        prepared: PreparedInputs,
        history: Sequence[UtteranceFeatures],
        methods: Sequence[str],
        profile: PersonProfile | None,
    ) -> list[CombinationRow]:
        return self.combination_rows(self.featurizer.encode(prepared), history, methods, profile)

    def combination_rows(
        self,
        current: UtteranceFeatures,
        history: Sequence[UtteranceFeatures] = (),
        methods: Sequence[str | None] | None = None,
        profile: PersonProfile | None = None,
    ) -> list[CombinationRow]:
        """`predict_combinations` on encoded features: one batched pass per method (default: the first) over every
        non-empty subset of ``current``'s modalities, relative to ``profile`` when one is given (checked by the
        caller). Call it on the torch thread."""
        networks = [self.network(method) for method in (methods or [None])]
        if profile is not None:
            *history, current = self._adapted([*history, current], profile)
        usable = [m for m in MODALITIES if m in current.vectors]
        subsets = [s for size in range(len(usable), 0, -1) for s in itertools.combinations(usable, size)]
        masks = torch.tensor([[m in subset for m in MODALITIES] for subset in subsets])
        names = [combination_name(subset) for subset in subsets]
        rows = []
        for network, settings in networks:
            logits = self._forward(network, [[*history, current]] * len(masks), masks).logits[:, -1]
            probabilities = self._probabilities(settings, logits, names).numpy()
            rows += [
                CombinationRow(
                    combination=name,
                    label=self.labels[int(np.argmax(row))],
                    probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                    method=settings.method,
                )
                for name, row in zip(names, probabilities, strict=True)
            ]
        return rows

    def predict_clip(
        self,
        clip: str | Path,
        transcript: str | Path | None = None,
        text: str | None = None,
        window_s: float = 2.0,
        hop_s: float = 1.0,
        methods: Sequence[str | None] | None = None,
        drop: Iterable[Modality | str] = (),
        progress: Callable[[float, str], None] | None = None,
        transcribe: str | Path | None = None,
        profile: PersonProfile | None = None,
    ) -> ClipResult:
        """A recorded clip (video with its soundtrack, or either alone) scored window by window under every
        combination of each window's modalities, with a pooled clip-level summary (`mculora.serving.clip_result`).
        ``transcript``: an .srt/.vtt file for the windows' text; ``text``: one sentence for the whole clip.
        ``progress(fraction, stage)`` is called as it goes; raising from it (e.g. `mculora.serving.clip.ClipCancelled`)
        stops the work. ``transcribe``: opt-in speech-to-text model for the text when no transcript is given
        (`mculora.serving.transcribe`; downloads from the Hub). ``profile``: read every window relative to that person
        (`enrol`). Raises `UnusableInput` for a clip nothing can be read from, ValueError for bad sizes (and
        `mculora.serving.transcribe.TranscriptionError`, `ProfileError`)."""
        self._check_profile(profile)
        return score_clip(
            self, clip, transcript, text, window_s, hop_s, methods, list(drop), progress, transcribe, profile
        )

    @staticmethod
    def _probabilities(settings: CheckpointConfig, logits: torch.Tensor, combinations: Sequence[str]) -> torch.Tensor:
        """Softmax of each row's logits [B, C] divided by its combination's temperature: calibrated probabilities
        when the checkpoint has temperatures (`mculora.training.calibration`), the raw softmax otherwise."""
        temperature = torch.tensor([settings.temperatures.get(c, 1.0) for c in combinations])
        return (logits.float().cpu() / temperature[:, None]).softmax(-1)

    def _usable_inputs(self, image, audio, text, video, drop) -> PreparedInputs:
        """Decode and check the inputs on the calling thread (a server's request thread: it overlaps the torch
        thread's work for other requests); raise `NothingToPredict`, listing each modality's reason, if none is
        usable."""
        prepared = self.featurizer.prepare(image=image, audio=audio, text=text, video=video, drop=drop)
        if len(prepared.missing) == len(MODALITIES):
            reasons = "; ".join(f"{m.value}: {reason}" for m, reason in prepared.missing.items())
            raise NothingToPredict(f"nothing usable to predict from ({reasons})")
        return prepared
