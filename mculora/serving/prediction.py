"""What a prediction gives back: the `Prediction` of one input, its `Contributions` (the logit split into the
network's terms), and the `CombinationRow`s of the same input under each combination of its modalities. Plots,
clips and the page depend on these types, not on the `Predictor` that makes them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mculora.encoders.featurize import UtteranceFeatures


@dataclass
class Contributions:
    """The exact split of each class logit into the head's base, shared-adapter and combination-adapter terms."""

    combination: str  # the active combination, e.g. "at"
    base: dict[str, float]
    shared: dict[str, float]
    adapter: dict[str, float]  # the combination adapter's term
    logits: dict[str, float]  # base + shared + adapter
    # Per modality: how much the combination adapters changed its representation, as ||combination-specific part|| /
    # ||combination stream|| (0 when the modality is absent). See `mculora.model.ModelOutput.specific_share`.
    combination_specific: dict[str, float]
    adapters: bool = True  # False for a network without MCULoRA's adapters (a peer): all of its logit is the base term


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    used: list[str]
    missing: dict[str, str]
    contributions: Contributions
    timings_ms: dict[str, float]
    notes: list[str]
    features: UtteranceFeatures = field(repr=False)  # the encoded inputs, for `history=` of the next call
    method: str = "mcu-lora"  # the training method of the checkpoint that made the prediction
    # With a profile: the probabilities the same input gets without it (``probabilities`` are with it).
    without_profile: dict[str, float] | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary (no arrays)."""
        return {
            "method": self.method,
            "label": self.label,
            "probabilities": self.probabilities,
            "used": self.used,
            "missing": self.missing,
            "contributions": asdict(self.contributions),
            "timings_ms": self.timings_ms,
            "notes": self.notes,
            "without_profile": self.without_profile,
        }


@dataclass
class CombinationRow:
    combination: str
    label: str
    probabilities: dict[str, float]
    method: str = "mcu-lora"
