"""CGGM: classifier-guided gradient modulation (Guo et al., NeurIPS 2024), as a training wrapper around a backbone.

Per training step, after the backward pass of ``task loss + λ·L_gm``:

1. Each modality has an auxiliary classifier (two linear layers) on its encoder's output, detached from the
   backbone and trained by its own Adam (lr ``aux_lr``); it is not part of the saved model.
2. Its batch accuracy a_m^t counts only the utterances where modality m is present (a dropped modality would
   otherwise score chance and look like it stopped learning). Δ_m = a_m^t − a_m^{t−1}.
3. coeff_m = (ΣΔ − Δ_m) / ΣΔ over the modalities present in the batch: the modality that improved fastest is damped,
   the others are boosted. (With ΣΔ ~0, or fewer than two modalities in the batch, every coeff_m is 1.) For
   regression the accuracy is the sign agreement over non-zero labels (the paper's Acc-2).
4. The gradients of modality m's encoder (its input projection and layers, `modality_parameters`) are multiplied
   by ρ·coeff_m. Nothing else is scaled: fusion, head and adapters keep their gradients.
5. The direction loss of the next step, L_gm = (Σ|coeff_m| − Σ coeff_m · cos(W_m, H_m)) / M, pulls the fusion head's
   block for modality m (H_m, the head's weights over that modality's part of the fused vector) towards the
   auxiliary classifier's output weights W_m. This follows the released code, which compares classifier weights;
   the paper words it as gradient directions, and with a linear head the weights are the accumulated gradients.

The backbone is ``cggm_backbone``: ``baseline`` (the late-fusion backbone, the default) or ``mcu-lora``.
Combinations are drawn as the backbone's own method draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mculora.lora import CombinationLoRALinear
from mculora.modalities import MODALITIES
from mculora.training.methods.base import METHODS, Method, register, task_loss

BACKBONES = ("baseline", "mcu-lora")


@dataclass
class CGGMSettings:
    backbone: str = "baseline"  # one of BACKBONES
    lam: float = 0.2  # λ, weight of the direction loss (the paper's value)
    rho: float = 1.3  # ρ, gradient scale (the paper's value)
    aux_lr: float = 5e-4  # the auxiliary classifiers' Adam learning rate (the paper's value)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"cggm backbone must be one of {BACKBONES}, got {self.backbone!r}")


@register
class CGGMMethod(Method):
    name = "cggm"
    network = None  # its backbone method's network (``--cggm-backbone``), with modulated gradients
    settings_class = CGGMSettings

    def __init__(self, config):
        super().__init__(config)
        self.backbone = METHODS[self.settings.backbone](config)
        self.model = None  # the network being trained (the direction loss reads its head)
        self.classifiers: nn.ModuleList | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.previous_accuracy: torch.Tensor | None = None
        self.coefficients = torch.ones(len(MODALITIES))

    def build_model(self, feature_dims: dict[str, int], num_outputs: int):
        model = self.backbone.build_model(feature_dims, num_outputs)
        hidden = model.config.hidden
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs)) for _ in MODALITIES
        )
        self.optimizer = torch.optim.Adam(self.classifiers.parameters(), lr=self.settings.aux_lr)
        return model

    def make_sampler(self):
        return self.backbone.make_sampler()

    def before_training(self, model, sampler, val_batches, device) -> None:
        self.model = model
        self.classifiers.to(device)
        self.backbone.before_training(model, sampler, val_batches, device)

    def after_epoch(self, model, sampler, val_batches, device, val_results, task) -> None:
        self.backbone.after_epoch(model, sampler, val_batches, device, val_results, task)

    def head_blocks(self, model) -> list[torch.Tensor]:
        """The fusion head's weight over each modality's part of the fused vector: [C, hidden] per modality."""
        head = model.head.base if isinstance(model.head, CombinationLoRALinear) else model.head
        return list(head.weight.split(model.config.hidden, dim=1))

    def loss(self, output, batch, task: str) -> torch.Tensor:
        loss = self.backbone.loss(output, batch, task)
        if self.settings.lam == 0 or self.model is None:
            return loss
        coeff = self.coefficients.to(loss.device)
        cosines = torch.stack(
            [
                F.cosine_similarity(classifier[-1].weight.detach().flatten(), block.flatten(), dim=0)
                for classifier, block in zip(self.classifiers, self.head_blocks(self.model), strict=True)
            ]
        )
        direction = (coeff.abs().sum() - (coeff * cosines).sum()) / len(MODALITIES)
        return loss + self.settings.lam * direction

    def after_backward(self, model, output, batch, routing, task: str) -> None:
        present = batch.utterance_mask[:, :, None] & routing.modality_mask.to(batch.utterance_mask.device)[:, None, :]
        present = present & batch.available
        accuracy = torch.full((len(MODALITIES),), float("nan"))
        self.optimizer.zero_grad(set_to_none=True)
        aux_loss = 0.0
        for j, m in enumerate(MODALITIES):
            rows = present[:, :, j]
            if not rows.any():
                continue
            logits, labels = self.classifiers[j](output.shared_repr[m].detach()[rows]), batch.labels[rows]
            aux_loss = aux_loss + task_loss(task, logits, labels, torch.ones_like(labels, dtype=torch.bool))
            accuracy[j] = _accuracy(task, logits.detach(), labels)
        if torch.is_tensor(aux_loss):
            aux_loss.backward()
            self.optimizer.step()
        self.coefficients = self.modulation(accuracy)
        for j, m in enumerate(MODALITIES):
            for parameter in model.modality_parameters(m):
                if parameter.grad is not None:
                    parameter.grad.mul_(self.settings.rho * self.coefficients[j])

    def modulation(self, accuracy: torch.Tensor) -> torch.Tensor:
        """coeff per modality from this step's accuracies (NaN: absent from the batch, coefficient 1)."""
        previous = self.previous_accuracy if self.previous_accuracy is not None else accuracy
        self.previous_accuracy = torch.where(accuracy.isnan(), previous, accuracy)
        seen = ~accuracy.isnan() & ~previous.isnan()
        delta = torch.where(seen, accuracy - previous, torch.zeros_like(accuracy))
        total = delta[seen].sum()
        coefficients = torch.ones(len(MODALITIES))
        if seen.sum() > 1 and total.abs() > 1e-8:
            coefficients[seen] = (total - delta[seen]) / total
        return coefficients


def _accuracy(task: str, outputs: torch.Tensor, labels: torch.Tensor) -> float:
    if task == "classification":
        return float((outputs.argmax(-1) == labels).float().mean())
    nonzero = labels != 0
    if not nonzero.any():
        return float("nan")
    return float((outputs.squeeze(-1)[nonzero] > 0).eq(labels[nonzero] > 0).float().mean())
