"""Train the face network (`mculora.encoders.face_net`) on FER-2013's training split.

    python -m mculora.recipes.face --data-root ../shared/data --out runs/face_net

The images are the FER-2013 items of `mculora.recipes.sources` (duplicates of test images and blank images already
removed): train to fit, val to report. Training is on the CPU-friendly side: the 28k 48x48 images sit in memory
as one uint8 tensor, augmentation is batched tensor work, and the network runs channels-last. Every random draw
comes from one seeded generator, so a re-run with the same seed gives bit-identical weights on the same machine.

Choices: SGD with Nesterov momentum and a cosine schedule after a one-epoch warm-up; cross-entropy with label
smoothing 0.1 and class weights proportional to 1 / sqrt(frequency) (disgust is 1.5 % of the images: full inverse
weighting over-predicts it, no weighting never predicts it); augmentation by random rotation (+-10 degrees),
scale (0.9-1.1), shift (+-10 %) and mirroring, the variation a webcam face shows.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mculora.encoders.face_net import (
    INPUT_SIZE,
    WEIGHTS_FILE,
    WIDTHS,
    FaceExpressionNet,
    embed_with_mirror,
    save_face_net,
)
from mculora.modalities import Modality
from mculora.recipes.encoder_training import (
    class_weights,
    cosine_with_warmup,
    parse_settings,
    reuse_or_train,
    shuffled_batches,
    train_epoch,
)
from mculora.recipes.face_crops import FaceCrops, path_crops
from mculora.recipes.sources import EKMAN, Item, fer2013_items


@dataclass
class FaceTrainConfig:
    data_root: Path = Path("../shared/data")
    out: Path = Path("runs/face_net")  # face_net.safetensors + report.json
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0
    # "path": learn from (and report on) the crops the run-time path cuts from each image (`face_crops`), with the
    # degradations of real webcam frames on top; "fer": from FER-2013's own 48x48 framing.
    framing: str = "fer"
    crop_cache: Path = Path("runs/face_crops")


def load_images(items: list[Item], crops: FaceCrops | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 48, 48] grayscale images and int64 [N] Ekman labels: the files themselves, or with ``crops`` the
    path crops of the items whose face the mesh found (the others are left out)."""
    if crops is None:
        images = np.stack([np.asarray(Image.open(item.path).convert("L"), dtype=np.uint8) for item in items])
    else:
        chosen = crops.select([item.id for item in items])
        items = [item for item, found in zip(items, chosen.found, strict=True) if found]
        images = chosen.crops[chosen.found]
    if images.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected {INPUT_SIZE}x{INPUT_SIZE} FER images, got {images.shape[1:]}")
    labels = np.array([EKMAN.index(item.label) for item in items], dtype=np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random similarity transform and mirror per image (float [B, 48, 48] out, edges replicated)."""
    size = len(images)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    angle = uniform(-10, 10) * math.pi / 180
    scale = uniform(0.9, 1.1)
    mirror = torch.where(torch.rand(size, generator=generator) < 0.5, -1.0, 1.0)
    shift = uniform(-0.2, 0.2), uniform(-0.2, 0.2)  # in grid units (the image spans 2): +-10 % of the side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * mirror, -sin, shift[0]], 1), torch.stack([sin * mirror, cos, shift[1]], 1)], 1
    )
    grid = F.affine_grid(theta, (size, 1, INPUT_SIZE, INPUT_SIZE), align_corners=False)
    return F.grid_sample(images.float()[:, None], grid, padding_mode="border", align_corners=False)[:, 0]


def degrade(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What a webcam frame does to a face, per image (float [B, 48, 48] in 0-255 in and out): exposure and contrast,
    gamma, a face a few dozen pixels wide (down- and up-sampled), sensor noise and JPEG compression."""
    size = len(images)

    def draw(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(size, generator=generator)

    def chosen(probability: float) -> list[int]:
        return torch.nonzero(torch.rand(size, generator=generator) < probability).flatten().tolist()

    mean = images.mean((1, 2), keepdim=True)
    contrast, brightness = draw(0.6, 1.4)[:, None, None], draw(-40, 40)[:, None, None]
    out = ((images - mean) * contrast + mean + brightness).clamp(0, 255)
    out = 255 * (out / 255) ** draw(0.7, 1.4)[:, None, None]
    out = out.numpy().copy()
    sides, qualities, noise = draw(14, 40), draw(15, 70), draw(0, 8)
    for i in chosen(0.35):  # a small or blurred face: fewer pixels than the network's input
        side = int(sides[i])
        small = cv2.resize(out[i], (side, side), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    for i in chosen(0.3):
        out[i] += noise[i].item() * torch.randn(INPUT_SIZE, INPUT_SIZE, generator=generator).numpy()
    for i in chosen(0.3):
        pixels = np.clip(out[i], 0, 255).astype(np.uint8)
        _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(qualities[i])])
        out[i] = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return torch.from_numpy(out).clamp(0, 255)


@torch.inference_mode()
def accuracy(net: FaceExpressionNet, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """(accuracy, predictions) with mirror averaging, as the encoder sees faces."""
    net.eval()
    predicted = torch.cat(
        [embed_with_mirror(net, images[i : i + 512])[1].argmax(1) for i in range(0, len(images), 512)]
    )
    return float((predicted == labels).float().mean()), predicted


def train_face_net(config: FaceTrainConfig, items: list[Item], log=print) -> tuple[FaceExpressionNet, dict]:
    """Fit the network on the train items; return it (eval mode) with per-epoch losses, val accuracy and timing."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    crops = path_crops(items, config.crop_cache) if config.framing == "path" else None
    images, labels = load_images([item for item in items if item.split == "train"], crops)
    val_images, val_labels = load_images([item for item in items if item.split == "val"], crops)
    net = FaceExpressionNet(WIDTHS).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(images) / config.batch_size)

    schedule = cosine_with_warmup(steps_per_epoch, steps_per_epoch * config.epochs)
    weights = class_weights(labels, len(EKMAN))
    history, step = [], 0

    def view(batch: torch.Tensor) -> torch.Tensor:
        moved = augment(batch, generator)
        return degrade(moved, generator) if config.framing == "path" else moved

    for epoch in range(config.epochs):
        batches = shuffled_batches(len(images), config.batch_size, generator)
        loss, step = train_epoch(
            net,
            optimizer,
            ((view(images[batch]), labels[batch]) for batch in batches),
            steps_per_epoch,
            [config.lr],
            schedule,
            step,
            weights,
            config.label_smoothing,
            f"face net epoch {epoch + 1}",
        )
        val_accuracy, _ = accuracy(net, val_images, val_labels)
        history.append({"epoch": epoch + 1, "loss": loss, "val_accuracy": val_accuracy})
        log(json.dumps(history[-1]))
    report = {
        "train_images": len(images),
        "val_images": len(val_images),
        "parameters": sum(p.numel() for p in net.parameters()),
        "history": history,
        "test_accuracy": accuracy(net, *load_images([item for item in items if item.split == "test"], crops))[0],
    }
    return net.eval(), report


def trained_face_net(config: FaceTrainConfig, items: list[Item], log=print) -> dict:
    """Train on the FER-2013 ``items`` and write ``config.out``/face_net.safetensors and report.json (with the
    PublicTest accuracy, mirror-averaged); or reuse them when the report there was made with the same settings."""
    faces = [item for item in items if item.modality is Modality.VISION]
    return reuse_or_train(config, WEIGHTS_FILE, lambda: train_face_net(config, faces, log), save_face_net)


def main(argv: list[str] | None = None) -> None:
    config = parse_settings(FaceTrainConfig, argv, __doc__.splitlines()[0])
    report = trained_face_net(config, fer2013_items(config.data_root), log=lambda line: print(line, file=sys.stderr))
    print(f"FER-2013 PublicTest accuracy {report['test_accuracy']:.3f}; weights in {config.out / WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
