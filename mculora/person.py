"""Person profiles: what the encoders' vectors of one person look like, so a prediction can be read relative to them.

An unseen person's voice and face move every vector away from where the training people's were: a calm speaker can
read as sad, a resting face as neutral whatever it does. A `PersonProfile` holds running statistics of one person's
vectors per modality, in two parts:

* ``calm``: from an enrolment (a short calm recording: a few spoken sentences, the resting face);
* ``session``: from the person's later inputs, where they allow it (`PersonProfile.update`), whatever they express.

`PersonReference` (``person_reference.safetensors`` beside a checkpoint, `mculora.recipes.person_adaptation`) holds
the same statistics of the training people and how far to move. `PersonReference.adapt` moves a person's vector so
that their statistics land on the training people's:

* with at least ``session_min`` session inputs: ``x - session_mean + population_mean``. Statistics over varied
  utterances carry the person's offset without their emotions (measured best on unseen speakers);
* else, with a calm enrolment: ``x + calm_weight * (reference_calm_mean - calm_mean)``. One calm mean is a noisy
  estimate of the offset (its emotion is one class, its sentences few), so it moves the vector part of the way.

Only the modalities the reference covers (a person's voice and face) are moved; text is left as it is.
A profile is plain JSON or safetensors (no pickle) and names the checkpoint its vectors came from
(`checkpoint_fingerprint`): a profile of another checkpoint's encoders is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from mculora.modalities import MODALITIES, Modality

PROFILE_FORMAT = "mculora-person-profile"
REFERENCE_FORMAT = "mculora-person-reference"
REFERENCE_FILE = "person_reference.safetensors"
PARTS = ("calm", "session")
# The files whose bytes decide every vector a profile holds: the fusion network and the encoders' trained weights.
FINGERPRINT_FILES = ("model.safetensors", "face_net.safetensors", "speech_net.safetensors", "text_net.safetensors")


class ProfileError(ValueError):
    """A profile that cannot be used here (another checkpoint's, or a malformed file), with the reason."""


def checkpoint_fingerprint(directory: str | Path) -> str:
    """A short hash of the checkpoint's network and encoder weights: what a profile's vectors are comparable with."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        path = Path(directory) / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class RunningStatistics:
    """Count, mean and sum of squared deviations of vectors (Welford's update, so a session grows one at a time)."""

    count: int = 0
    mean: np.ndarray | None = None  # float64 [D]
    m2: np.ndarray | None = None  # float64 [D]

    def add(self, vectors: np.ndarray) -> None:
        """Add the rows of ``vectors`` [N, D] (or one vector [D])."""
        for row in np.atleast_2d(np.asarray(vectors, dtype=np.float64)):
            if self.mean is None:
                self.mean, self.m2 = np.zeros_like(row), np.zeros_like(row)
            if row.shape != self.mean.shape:
                raise ProfileError(f"a vector of {row.shape[0]} values does not fit statistics of {self.mean.shape[0]}")
            self.count += 1
            delta = row - self.mean
            self.mean = self.mean + delta / self.count
            self.m2 = self.m2 + delta * (row - self.mean)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count - 1, 1))


@dataclass
class PersonProfile:
    """One person's vector statistics per modality (see the module docstring), for the checkpoint ``checkpoint``."""

    checkpoint: str  # `checkpoint_fingerprint` of the checkpoint the vectors came from
    calm: dict[Modality, RunningStatistics] = field(default_factory=dict)
    session: dict[Modality, RunningStatistics] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the enrolment left out, and why
    # What the enrolment read, for the person to check (`mculora.serving.enrolment.Capture`); never saved.
    capture: object | None = field(default=None, repr=False, compare=False)

    @property
    def modalities(self) -> list[str]:
        """The modalities the profile has statistics of, e.g. ["audio", "vision"]."""
        return [m.value for m in MODALITIES if m in self.calm or m in self.session]

    def counts(self) -> dict[str, dict[str, int]]:
        """How many vectors each part holds per modality: {"calm": {"audio": 4}, "session": {...}}."""
        return {part: {m.value: s.count for m, s in getattr(self, part).items()} for part in PARTS}

    def add_calm(self, modality: Modality, vectors: np.ndarray | torch.Tensor) -> None:
        self.calm.setdefault(modality, RunningStatistics()).add(_numpy(vectors))

    def update(self, observed) -> None:
        """Grow the session part from the person's own later input: a `Prediction` (its raw vectors, never the
        adapted ones), its ``features``, or a mapping of modality to vector."""
        vectors = getattr(getattr(observed, "features", observed), "vectors", observed)
        if not isinstance(vectors, Mapping):
            raise ProfileError("update takes a Prediction, its features, or a {modality: vector} mapping")
        for modality, vector in vectors.items():
            self.session.setdefault(Modality(modality), RunningStatistics()).add(_numpy(vector))

    def check_checkpoint(self, fingerprint: str) -> None:
        if self.checkpoint != fingerprint:
            raise ProfileError(
                f"this profile was made with another checkpoint ({self.checkpoint}, this one is {fingerprint}): its "
                "vectors are not comparable; enrol again with this checkpoint"
            )

    # -- files ---------------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the profile as ``.json`` or ``.safetensors`` (by the suffix)."""
        path = Path(path)
        header = {"format": PROFILE_FORMAT, "checkpoint": self.checkpoint, "notes": self.notes, "counts": self.counts()}
        arrays = {
            f"{part}.{m.value}.{name}": getattr(s, name)
            for part in PARTS
            for m, s in getattr(self, part).items()
            if s.count
            for name in ("mean", "m2")
        }
        if path.suffix == ".safetensors":
            save_file(arrays, str(path), metadata={"profile": json.dumps(header)})
        elif path.suffix == ".json":
            path.write_text(json.dumps({**header, "arrays": {k: v.tolist() for k, v in arrays.items()}}) + "\n")
        else:
            raise ProfileError(f"save a profile as .json or .safetensors, not {path.suffix or 'a name without suffix'}")
        return path

    @classmethod
    def load(cls, path: str | Path) -> PersonProfile:
        """Read a profile written by `save`; `ProfileError` says what is wrong with a file that is not one."""
        path = Path(path)
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="numpy") as handle:
                    header = json.loads((handle.metadata() or {}).get("profile", "null"))
                arrays = load_file(str(path))
            else:
                body = json.loads(path.read_text())
                header = body
                arrays = {k: np.asarray(v, dtype=np.float64) for k, v in (body.get("arrays") or {}).items()}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError, AttributeError, TypeError) as error:
            raise ProfileError(f"could not read the profile {path.name}: {error}") from None
        if not isinstance(header, dict) or header.get("format") != PROFILE_FORMAT:
            raise ProfileError(f"{path.name} is not an mculora person profile")
        profile = cls(checkpoint=str(header.get("checkpoint")), notes=list(header.get("notes") or []))
        try:
            for part, per_modality in (header.get("counts") or {}).items():
                for name, count in per_modality.items():
                    mean, m2 = (np.asarray(arrays[f"{part}.{name}.{key}"], dtype=np.float64) for key in ("mean", "m2"))
                    if part not in PARTS or mean.shape != m2.shape or int(count) < 1:
                        raise ValueError(f"bad {part} statistics of {name}")
                    getattr(profile, part)[Modality(name)] = RunningStatistics(int(count), mean, m2)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            raise ProfileError(f"{path.name} is not a valid person profile: {error}") from None
        return profile


@dataclass
class PersonReference:
    """The training people's statistics a profile is moved onto, and the moving rule's settings (module docstring).

    ``calm_mean``: per modality, the mean vector of the training people's calm (neutral) recordings;
    ``population_mean``: the mean over all their recordings; ``calm_weight``: how far a calm enrolment moves a
    vector; ``session_min``: session inputs from which the session statistics are used instead."""

    calm_mean: dict[Modality, np.ndarray]
    population_mean: dict[Modality, np.ndarray]
    calm_weight: dict[Modality, float]
    session_min: int = 8

    @property
    def modalities(self) -> list[Modality]:
        return [m for m in MODALITIES if m in self.calm_mean]

    def adapt(self, vectors: Mapping[Modality, torch.Tensor], profile: PersonProfile) -> dict[Modality, torch.Tensor]:
        """``vectors`` of one utterance moved by the person's statistics; modalities without statistics unchanged."""
        adapted = dict(vectors)
        for modality, vector in vectors.items():
            shift = self.shift(modality, profile)
            if shift is not None:
                adapted[modality] = vector + torch.as_tensor(shift, dtype=vector.dtype, device=vector.device)
        return adapted

    def shift(self, modality: Modality, profile: PersonProfile) -> np.ndarray | None:
        """What `adapt` adds to the person's ``modality`` vectors (None: nothing)."""
        if modality not in self.calm_mean:
            return None
        session, calm = profile.session.get(modality), profile.calm.get(modality)
        if session is not None and session.count >= self.session_min:
            return (self.population_mean[modality] - session.mean).astype(np.float32)
        if calm is not None and calm.count:
            return (self.calm_weight[modality] * (self.calm_mean[modality] - calm.mean)).astype(np.float32)
        return None

    def save(self, path: str | Path) -> Path:
        arrays = {f"{m.value}.calm_mean": self.calm_mean[m].astype(np.float32) for m in self.modalities}
        arrays |= {f"{m.value}.population_mean": self.population_mean[m].astype(np.float32) for m in self.modalities}
        settings = {"calm_weight": {m.value: w for m, w in self.calm_weight.items()}, "session_min": self.session_min}
        save_file(arrays, str(path), metadata={"format": REFERENCE_FORMAT, "settings": json.dumps(settings)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, feature_dims: Mapping[str, int]) -> PersonReference:
        """Read ``path`` and check it against the checkpoint's feature sizes; `ProfileError` if it is not usable."""
        try:
            with safe_open(str(path), framework="numpy") as handle:
                metadata = handle.metadata() or {}
            arrays = load_file(str(path))
            settings = json.loads(metadata.get("settings", "{}"))
            if metadata.get("format") != REFERENCE_FORMAT:
                raise ValueError("not an mculora person reference")
            names = sorted({key.split(".")[0] for key in arrays})
            reference = cls(
                calm_mean={Modality(n): arrays[f"{n}.calm_mean"] for n in names},
                population_mean={Modality(n): arrays[f"{n}.population_mean"] for n in names},
                calm_weight={Modality(n): float(settings["calm_weight"][n]) for n in names},
                session_min=int(settings.get("session_min", 8)),
            )
            for m in reference.modalities:
                if reference.calm_mean[m].shape != (feature_dims[m.value],):
                    size = reference.calm_mean[m].shape
                    raise ValueError(f"{m.value} vectors of {size} for a network of {feature_dims[m.value]} inputs")
        except (OSError, SafetensorError, KeyError, ValueError, TypeError, json.JSONDecodeError) as error:
            raise ProfileError(f"{Path(path).name}: {error}") from None
        return reference


def _numpy(vectors: np.ndarray | torch.Tensor | Iterable) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        return vectors.detach().float().cpu().numpy()
    return np.asarray(vectors, dtype=np.float64)
