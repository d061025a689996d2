"""The person reference of a checkpoint, and what enrolment does for people the model never heard.

    python -m mculora.recipes.person_adaptation --checkpoint checkpoints/default --data-root ../shared/data

1. The reference (`mculora.person.PersonReference`, ``person_reference.safetensors``): the mean vector of the
   training people's calm recordings through the checkpoint's own encoders (RAVDESS + EmoDB training speakers'
   neutral and calm clips; FER-2013 training faces labelled neutral: FER-2013 has no identities, so the face
   reference is the neutral face of the crowd), the population means the fusion standardises by, and the rule's
   settings.
2. The report (``metrics.json`` ``person_adaptation``, and the card): every speaker the served networks never
   trained on (the RAVDESS and EmoDB validation and test speakers), each alone. Per speaker, `DRAWS` enrolments of
   `ENROL_CLIPS` of their calm clips; their other clips are scored by voice alone (condition ``a``) without a
   profile, with their enrolment, with another speaker's enrolment of the same corpus (a profile that is not
   theirs must not help), and with a session of their other clips (leave-one-out: the scored clip is never in its
   own statistics). Accuracy and the largest predicted-class share on class-balanced draws, macro-F1, and ECE
   after the checkpoint's temperature.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mculora.checkpoint import load_checkpoint
from mculora.encoders import build_encoders
from mculora.encoders.featurize import Featurizer
from mculora.modalities import MODALITIES, Modality
from mculora.person import REFERENCE_FILE, PersonProfile, PersonReference
from mculora.preprocess import UnusableInput
from mculora.preprocess.audio import prepare_audio
from mculora.recipes import model_card
from mculora.recipes.pairing import make_batch
from mculora.recipes.ravdess_au import AU_DIM, AU_FOLDS
from mculora.recipes.sources import (
    EKMAN,
    RAVDESS_TO_EKMAN,
    Item,
    emodb_items,
    fer2013_items,
    goemotions_items,
    meld_items,
    ravdess_items,
)
from mculora.training.calibration import expected_calibration_error, softmax
from mculora.training.evaluate import predict_conditions
from mculora.training.metrics import balanced_draw, classification_report, collapse_check

NEUTRAL = EKMAN.index("neutral")
# How far a calm enrolment moves a person's vectors (see `mculora.person`), measured on people the networks never
# saw (this module's report). Faces all the way: on facial action units of unseen actors the person's neutral face
# is the reference (as in OpenFace's person-specific normalisation), and all the way measured better than half.
# Voices not at all: a few calm sentences' mean is a poor estimate of a speaker's offset, and moving by it lost
# accuracy on the unseen speakers at every weight tried (half, all); voices move by session statistics only.
CALM_WEIGHT = {Modality.AUDIO: 0.0, Modality.VISION: 1.0}
# Session statistics take over from the enrolment from this many of the person's inputs: with fewer, their mean
# still carries the emotions of the few utterances (measured: no gain at 8, a gain from 16).
SESSION_MIN = 16
ENROL_CLIPS = 4
DRAWS = 5
FACE_REFERENCE_IMAGES = 400
ENCODE_BATCH = 32
CONDITIONS = ("without", "enrolment", "another_person", "session")
PAIRED_CONDITIONS = ("a", "at", "av", "atv")  # the combinations that hold the person's voice
PARTNERS_PER_LABEL = 60
TINY_SPEAKERS = ("ravdess-actor-19", "ravdess-actor-20")


def encode_speech(featurizer: Featurizer, items: list[Item]) -> np.ndarray:
    """The audio encoder's vectors of ``items`` [N, D], as the Predictor computes them."""
    encoder = featurizer.encoders[Modality.AUDIO]
    chunks = [
        encoder.encode([prepare_audio(item.path).samples for item in items[start : start + ENCODE_BATCH]]).numpy()
        for start in range(0, len(items), ENCODE_BATCH)
    ]
    return np.concatenate(chunks)


def neutral_face_mean(featurizer: Featurizer, faces: list[Item], seed: int, count: int) -> np.ndarray:
    """The mean vision vector of ``count`` random neutral training faces, through the run-time path."""
    rng = np.random.default_rng(seed)
    neutral = [item for item in faces if item.split == "train" and item.label == "neutral"]
    vectors = []
    for index in rng.permutation(len(neutral)):
        try:
            vectors.append(featurizer.vision(str(neutral[index].path), None, {})[0].numpy())
        except UnusableInput:
            continue
        if len(vectors) == count:
            break
    return np.mean(vectors, axis=0)


def build_reference(
    network: torch.nn.Module, featurizer: Featurizer, speech: list[Item], speech_vectors, faces, face_count: int
) -> PersonReference:
    train = np.array([item.split == "train" for item in speech])
    calm = np.array([item.label == "neutral" for item in speech])
    return PersonReference(
        calm_mean={
            Modality.AUDIO: speech_vectors[train & calm].mean(0),
            Modality.VISION: neutral_face_mean(featurizer, faces, seed=0, count=face_count),
        },
        # What the fusion standardises its inputs by: the training pools' means.
        population_mean={m: getattr(network, f"{m.value}_mean").cpu().numpy() for m in CALM_WEIGHT},
        calm_weight=dict(CALM_WEIGHT),
        session_min=SESSION_MIN,
    )


def logits_under(
    network: torch.nn.Module, given: dict[Modality, np.ndarray], conditions: list[str]
) -> dict[str, np.ndarray]:
    """The network's logits [N, C] per condition for the modalities ``given`` (the others absent)."""
    size = len(next(iter(given.values())))
    dims = network.config.feature_dims
    inputs = {
        m: given[m].astype(np.float32) if m in given else np.zeros((size, dims[m.value]), np.float32)
        for m in MODALITIES
    }
    available = np.tile(np.array([m in given for m in MODALITIES]), (size, 1))
    batch = make_batch(inputs, np.zeros(size, np.int64), available)
    outputs = predict_conditions(network, [batch], conditions, torch.device("cpu"))
    return {condition: logits for condition, (_, logits) in outputs.items()}


def alone_logits(network: torch.nn.Module, modality: Modality, vectors: np.ndarray) -> np.ndarray:
    """The network's logits [N, C] for ``modality`` alone."""
    condition = modality.value[0]
    return logits_under(network, {modality: vectors}, [condition])[condition]


@dataclass
class People:
    """Vectors of one modality of several people, with their labels and who each is."""

    vectors: np.ndarray  # [N, D]
    labels: np.ndarray  # [N] EKMAN indices
    people: np.ndarray  # [N] person ids
    peers: dict[str, list[str]]  # per person under test, the others whose enrolment stands in for a stranger's


def unseen_people_report(
    network: torch.nn.Module,
    modality: Modality,
    reference: PersonReference,
    people: People,
    temperature: float = 1.0,
    seed: int = 0,
) -> dict:
    """The report of the module docstring for ``people.peers``' people, pooled and per person."""
    rng = np.random.default_rng(seed)
    vectors, labels = people.vectors, people.labels
    scored: dict[str, dict[str, list]] = {c: {p: [] for p in people.peers} for c in CONDITIONS}

    def score(condition: str, person: str, rows: np.ndarray, profile: PersonProfile | None) -> None:
        shift = None if profile is None else reference.shift(modality, profile)
        moved = vectors[rows] if shift is None else vectors[rows] + shift
        scored[condition][person].append((labels[rows], alone_logits(network, modality, moved)))

    for person, peers in people.peers.items():
        rows = np.flatnonzero(people.people == person)
        calm = rows[labels[rows] == NEUTRAL]
        for _ in range(DRAWS):
            enrol = rng.choice(calm, ENROL_CLIPS, replace=False)
            kept = np.setdiff1d(rows, enrol)
            stranger = np.flatnonzero((people.people == rng.choice(peers)) & (labels == NEUTRAL))
            score("without", person, kept, None)
            score("enrolment", person, kept, _profile(modality, calm=vectors[enrol]))
            score("another_person", person, kept, _profile(modality, calm=vectors[rng.choice(stranger, ENROL_CLIPS)]))
            # A session of `session_min` of the person's other recordings, whatever they express; scored on the rest.
            session = rng.choice(kept, reference.session_min, replace=False)
            score("session", person, np.setdiff1d(kept, session), _profile(modality, session=vectors[session]))
    return {
        "people": list(people.peers),
        "enrol_recordings": ENROL_CLIPS,
        "session_recordings": reference.session_min,
        "draws": DRAWS,
        "conditions": {c: _summary(scored[c], temperature, seed) for c in CONDITIONS},
    }


def _profile(modality: Modality, calm: np.ndarray | None = None, session: np.ndarray | None = None) -> PersonProfile:
    profile = PersonProfile(checkpoint="")
    if calm is not None:
        profile.add_calm(modality, calm)
    if session is not None:
        profile.update({modality: session})
    return profile


def _summary(per_person: dict[str, list], temperature: float, seed: int) -> dict:
    """Accuracy and macro-F1 on a class-balanced draw of all people's scored recordings, ECE after ``temperature``,
    the largest predicted-class share, and each person's accuracy on a class-balanced draw of theirs."""
    truth = np.concatenate([t for runs in per_person.values() for t, _ in runs])
    logits = np.concatenate([lg for runs in per_person.values() for _, lg in runs])
    pick = balanced_draw(truth, seed)
    full = classification_report(truth[pick], logits[pick], EKMAN)
    each = {}
    for person, runs in per_person.items():
        t, lg = np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs])
        each[person] = float((lg.argmax(1) == t)[balanced_draw(t, seed)].mean())
    return {
        "accuracy": full["accuracy"],
        "macro_f1": full["macro_f1"],
        "ece": expected_calibration_error(softmax(logits[pick], temperature), truth[pick]),
        "largest_share": collapse_check(truth, logits, EKMAN, seed)["largest_share"],
        "mean_person_accuracy": float(np.mean(list(each.values()))),
        "people": each,
    }


def partner_vectors(
    featurizer: Featurizer, items: list[Item], modality: Modality, per_label: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_label`` random test texts or faces of each label, encoded as a prediction encodes them."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in EKMAN:
        pool = [item for item in items if item.modality is modality and item.split == "test" and item.label == label]
        chosen += [pool[i] for i in rng.permutation(len(pool))[:per_label]]
    if modality is Modality.TEXT:
        encoded = featurizer.texts([item.text for item in chosen], {})
    else:
        encoded = []
        for item in chosen:
            try:
                encoded.append(featurizer.vision(str(item.path), None, {})[0])
            except UnusableInput as reason:
                encoded.append(reason)
    kept = [(vector, item) for vector, item in zip(encoded, chosen, strict=True) if not isinstance(vector, Exception)]
    return np.stack([v.numpy() for v, _ in kept]), np.array([EKMAN.index(item.label) for _, item in kept])


def paired_calibration(
    network: torch.nn.Module,
    temperatures: dict[str, float],
    reference: PersonReference,
    people: People,
    partners: dict[Modality, tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
) -> dict:
    """The unseen speakers' voices joined with a test text and a test face of the same label, under every
    combination with the voice: accuracy and ECE after the checkpoint's temperatures, without a profile and with a
    session of `session_min` of the speaker's other recordings (scored on the rest), over `DRAWS` draws."""
    rng = np.random.default_rng(seed)
    voices: dict[str, list] = {"without": [], "session": []}
    rows_used = []
    labelled = [tags for _, tags in partners.values()]
    for person in people.peers:
        rows = np.flatnonzero(people.people == person)
        # Only labels that have partners (EmoDB has no surprise, and a tiny run few texts and faces).
        paired = rows[np.isin(people.labels[rows], functools.reduce(np.intersect1d, labelled))]
        for _ in range(DRAWS):
            session = rng.choice(rows, reference.session_min, replace=False)
            scored = np.setdiff1d(paired, session)
            profile = _profile(Modality.AUDIO, session=people.vectors[session])
            voices["without"].append(people.vectors[scored])
            voices["session"].append(people.vectors[scored] + reference.shift(Modality.AUDIO, profile))
            rows_used.append(scored)
    labels = people.labels[np.concatenate(rows_used)]
    given = {
        m: vectors[[rng.choice(np.flatnonzero(tags == label)) for label in labels]]
        for m, (vectors, tags) in partners.items()
    }
    pick = balanced_draw(labels, seed)
    report = {}
    for name, parts in voices.items():
        outputs = logits_under(network, {**given, Modality.AUDIO: np.concatenate(parts)}, list(PAIRED_CONDITIONS))
        report[name] = {
            c: {
                "accuracy": float((logits[pick].argmax(1) == labels[pick]).mean()),
                "ece": expected_calibration_error(softmax(logits[pick], temperatures.get(c, 1.0)), labels[pick]),
            }
            for c, logits in outputs.items()
        }
    return {"pairs": int(len(pick)), "conditions": report}


def speech_people(speech: list[Item], vectors: np.ndarray) -> People:
    """The RAVDESS and EmoDB speakers no served network trained on (validation and test speakers); a stranger is
    another of them from the same corpus."""
    groups = np.array([item.group for item in speech])
    unseen = sorted({item.group for item in speech if item.split != "train"})
    corpus = {group: group.split("-")[0] for group in unseen}
    peers = {g: [o for o in unseen if o != g and corpus[o] == corpus[g]] for g in unseen}
    return People(vectors, np.array([EKMAN.index(item.label) for item in speech]), groups, peers)


def face_units_report(checkpoint: Path, data_root: Path) -> dict:
    """The same rule on faces of people never seen: the paired benchmark's first fold (its actors never trained its
    network), facial action units alone. The served face path cannot be measured so: FER-2013 has no identities."""
    network, _ = load_checkpoint(checkpoint / "ravdess_au", torch.device("cpu"))
    data = np.load(data_root / "ravdess_au" / "ravdess_au_audio.npz", allow_pickle=False)
    units = data["features"][:, :AU_DIM].astype(np.float32)
    labels = np.array([EKMAN.index(RAVDESS_TO_EKMAN.get(e, e)) for e in data["emotion"]])
    actors = np.array([f"ravdess-actor-{a:02d}" for a in data["actor"]])
    fold = (data["actor"] - 1) % AU_FOLDS
    tested = sorted(set(actors[fold == 0]))
    trained = (fold != 0) & (fold != 1)  # the first fold's validation actors are the second fold's test actors
    reference = PersonReference(
        calm_mean={Modality.VISION: units[trained & (labels == NEUTRAL)].mean(0)},
        population_mean={Modality.VISION: network.vision_mean.cpu().numpy()},
        calm_weight={Modality.VISION: CALM_WEIGHT[Modality.VISION]},
        session_min=SESSION_MIN,
    )
    peers = {actor: [other for other in tested if other != actor] for actor in tested}
    return unseen_people_report(network, Modality.VISION, reference, People(units, labels, actors, peers))


def measure(checkpoint: Path, data_root: Path, tiny: bool = False) -> dict:
    """Write ``checkpoint``'s person reference; return the report on people it never saw. ``tiny``: a pipeline
    check (the reference from a few recordings, two unseen speakers)."""
    device = torch.device("cpu")
    network, config = load_checkpoint(checkpoint, device)
    featurizer = Featurizer(build_encoders(config.encoders["profile"], device, weights=checkpoint))
    # Only what the reference and the report read: the training speakers' calm clips and every unseen speaker's.
    speech = [
        item
        for item in ravdess_items(data_root) + emodb_items(data_root)
        if item.split != "train" or item.label == "neutral"
    ]
    if tiny:
        speech = [item for item in speech if item.split == "train" or item.group in TINY_SPEAKERS][::2] + [
            item for item in speech if item.group in TINY_SPEAKERS
        ]
        speech = list(dict.fromkeys(speech))
    print(f"person reference: encoding {len(speech)} speech clips", file=sys.stderr)
    vectors = encode_speech(featurizer, speech)
    faces = fer2013_items(data_root)
    reference = build_reference(network, featurizer, speech, vectors, faces, 20 if tiny else FACE_REFERENCE_IMAGES)
    reference.save(checkpoint / REFERENCE_FILE)
    people = speech_people(speech, vectors)
    per_label = 8 if tiny else PARTNERS_PER_LABEL
    texts = goemotions_items(data_root) + meld_items(data_root)
    partners = {
        Modality.TEXT: partner_vectors(featurizer, texts, Modality.TEXT, per_label, seed=1),
        Modality.VISION: partner_vectors(featurizer, faces, Modality.VISION, per_label, seed=2),
    }
    return {
        "speech": unseen_people_report(network, Modality.AUDIO, reference, people, config.temperatures.get("a", 1.0)),
        "paired_calibration": paired_calibration(network, config.temperatures, reference, people, partners),
        "face_units": face_units_report(checkpoint, data_root),
    }


def run(checkpoint: Path, data_root: Path) -> dict:
    """`measure`, with the report added to the checkpoint's metrics.json and model card."""
    report = measure(checkpoint, data_root)
    metrics_path = checkpoint / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["person_adaptation"] = report
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    default_metrics = checkpoint.parent / "default" / "metrics.json"
    peer = metrics["training"].get("method", "mcu-lora") != "mcu-lora" and default_metrics.is_file()
    model_card.write(checkpoint, metrics, json.loads(default_metrics.read_text()) if peer else None)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/default"))
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    args = parser.parse_args(argv)
    try:
        report = run(args.checkpoint, args.data_root)
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
    for name in ("speech", "face_units"):
        for condition, values in report[name]["conditions"].items():
            print(
                f"{name:10s} {condition:15s} accuracy {values['accuracy']:.3f}  macro-F1 {values['macro_f1']:.3f}  "
                f"ECE {values['ece']:.3f}  largest share {values['largest_share']:.2f}"
            )
    for profile, conditions in report["paired_calibration"]["conditions"].items():
        print(f"paired     {profile:10s} " + "  ".join(f"{c} ECE {v['ece']:.3f}" for c, v in conditions.items()))


if __name__ == "__main__":
    main()
