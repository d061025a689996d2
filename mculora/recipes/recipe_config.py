"""The default recipe's settings (`mculora.recipes.default`): one dataclass, its fields the recipe's flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RecipeConfig:
    data_root: Path = Path("../shared/data")
    work: Path = field(default=Path("runs/default"), metadata={"help": "feature cache, manifest and logs"})
    method: str = field(default="mcu-lora", metadata={"help": "mcu-lora, or a peer method (mplmm, wander, ...)"})
    out: Path | None = field(default=None, metadata={"help": "default: checkpoints/default, or checkpoints/METHOD"})
    epochs: int = 20
    samples_per_epoch: int = 16384
    batch_size: int = 64
    lr: float = 1e-4
    seed: int = 66
    pairs_per_label: int = field(default=150, metadata={"help": "label-paired validation/test samples per label"})
    au_epochs: int = 60
    face_epochs: int = 20
    text_epochs: int = 3
    speech_epochs: int = 60
    speech_augment_variants: int = field(default=3, metadata={"help": "copies of each clip under browser conditions"})
    # Off: a band's mean carries emotion (arousal raises the high bands), not only the microphone
    # (docs/reports/generalisation.md measures it).
    speech_band_normalised: bool = field(default=False, metadata={"help": "remove the speech network's band means"})
    folds: int = field(default=2, metadata={"help": "K of the encoders' cross-fitting (K >= 2)"})
    # The fold networks give the vectors the fusion trains on, the served ones those it is tested and served on: trained
    # for fewer epochs, their outputs are weaker than the served ones and the fusion learns to under-trust them. 1.0
    # (with --session-share 0.5) made a candidate that read faces better but some modalities alone worse: not shipped
    # (docs/reports/generalisation.md, "A candidate that was not shipped"); the defaults are the shipped checkpoint's.
    fold_epoch_scale: float = field(
        default=0.5, metadata={"help": "the fold networks' epochs as a fraction of the served networks'"}
    )
    # Without noise the fusion fits its pools' exact vectors within an epoch (a pool is small next to the pairs drawn
    # from it); too much drowns the weaker modalities (docs/reports/generalisation.md).
    feature_noise: float = field(
        default=0.5, metadata={"help": "noise on the fusion's training vectors, in units of each feature's spread"}
    )
    average_from_epoch: int = field(
        default=0, metadata={"help": "0: the fusion's best epoch; k: its best running weight average from epoch k on"}
    )
    session_share: float = field(
        default=0.0, metadata={"help": "share of training voices moved by a session of their speaker's other clips"}
    )
    # The fusion's training (draws, noise, initialisation) apart from everything the seed fixes before it (folds,
    # networks, features, the validation and test pairs): re-running only the fusion measures its run-to-run spread.
    fusion_seed: int | None = field(default=None, metadata={"help": "the fusion's own seed (default: --seed)"})
    tiny: bool = field(default=False, metadata={"help": "a few items per label and split: a pipeline check"})
    device: str | None = None

    @property
    def fusion_training_seed(self) -> int:
        return self.seed if self.fusion_seed is None else self.fusion_seed
