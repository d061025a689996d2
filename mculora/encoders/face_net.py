"""A compact facial-expression CNN over 48x48 grayscale faces in FER-2013's framing, and the vision encoder that
joins its embedding to the face-geometry descriptor.

The network is trained on FER-2013's training split by `mculora.recipes.face`; its weights travel inside each
checkpoint that uses it (``face_net.safetensors``, next to ``model.safetensors``) and the encoder's name carries a
digest of them, so a checkpoint refuses features computed with any other face network.

Framing: FER-2013's crops are tighter than `Face.crop`. On 145 FER images the square `Face.crop` is cut from is
1.15 times the image side (median) and centred 4 % of a side lower, so the network sees the central
``NET_FRACTION`` of `Face.crop`, raised by ``NET_RAISE`` of its side: webcam faces then look like the faces it
learned from.

Embedding layout (`FaceExpressionEncoder.dim` = 181 + 192 + 7 = 380): the 181 geometry values
(`mculora.encoders.face_geometry`), the network's 192 pooled features, then its 7 Ekman logits, each averaged over the
face and its mirror image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mculora.dropout import Dropout
from mculora.encoders.base import Encoder, EncoderUnavailable, weights_digest
from mculora.encoders.conv import vgg_layers
from mculora.encoders.face_geometry import FaceGeometryDescriptor
from mculora.modalities import Modality
from mculora.preprocess.vision import CROP_SIZE, Face

INPUT_SIZE = 48
WIDTHS = (24, 48, 96, 192)  # channels of the four stages; 0.66 M parameters
NUM_CLASSES = 7  # Ekman-7, in `mculora.recipes.sources.EKMAN` order
WEIGHTS_FILE = "face_net.safetensors"
NET_FRACTION = 0.87  # 1 / 1.15: FER's side as a fraction of Face.crop's
NET_RAISE = 0.035  # how far above Face.crop's centre FER's centre lies, in Face.crop sides


class FaceExpressionNet(nn.Module):
    """VGG-style: four stages of two 3x3 conv-BN-ReLU layers, 2x2 max-pooling between them (48 -> 6 px), global
    average pooling, a linear head. Inputs are standardised per image, so global brightness and contrast (a
    webcam's exposure) do not matter."""

    def __init__(self, widths: Sequence[int] = WIDTHS, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(*vgg_layers(widths), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = Dropout(0.3)
        self.head = nn.Linear(widths[-1], num_classes)
        self.embedding_dim = widths[-1]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float [B, 48, 48] grayscale (0-255) -> float [B, embedding_dim]."""
        x = images.float()[:, None]
        x = (x - x.mean(dim=(2, 3), keepdim=True)) / x.std(dim=(2, 3), keepdim=True).clamp(min=1.0)
        return self.features(x.contiguous(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(images)))


def save_face_net(net: FaceExpressionNet, path: Path) -> None:
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in net.state_dict().items()}
    save_file(state, str(path))


def load_face_net(path: Path) -> FaceExpressionNet:
    """The network stored at ``path``, in eval mode; `EncoderUnavailable` with the reason when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise EncoderUnavailable(
            f"the offline vision encoder needs the face network's weights ({path.name}), which a checkpoint carries; "
            f"none at {path}"
        )
    try:
        state = load_file(str(path))
        net = FaceExpressionNet(_stored_widths(state))
        net.load_state_dict(state)
    except Exception as error:  # a truncated or foreign file: say which and why, whatever safetensors/torch raise
        raise EncoderUnavailable(f"{path} is not a usable face network: {error}") from None
    return net.eval()


def _stored_widths(state: dict[str, torch.Tensor]) -> list[int]:
    """The stage widths of stored weights: every stage has two convolutions of the same width."""
    convs = sorted(
        (int(name.split(".")[1]), tensor.shape[0])
        for name, tensor in state.items()
        if name.startswith("features.") and tensor.dim() == 4
    )
    return [int(width) for _, width in convs][::2]


def network_crop(face: Face) -> np.ndarray:
    """uint8 grayscale [48, 48]: the part of ``face.crop`` framed like a FER-2013 image (module docstring)."""
    side = round(NET_FRACTION * CROP_SIZE)
    left = (CROP_SIZE - side) // 2
    top = max(0, left - round(NET_RAISE * CROP_SIZE))
    gray = cv2.cvtColor(face.crop[top : top + side, left : left + side], cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


@torch.inference_mode()
def embed_with_mirror(net: FaceExpressionNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, logits) averaged over each image and its mirror: a face's expression has no handedness."""
    both = torch.cat([images, images.flip(-1)])
    features = net.embed(both)
    logits = net.head(features)
    half = len(images)
    return (features[:half] + features[half:]) / 2, (logits[:half] + logits[half:]) / 2


class FaceExpressionEncoder(Encoder):
    """Faces -> float32 [B, 380]: geometry descriptor, then the face network's features and logits."""

    modality = Modality.VISION

    def __init__(self, weights: Path, device: torch.device | str = "cpu") -> None:
        self.geometry = FaceGeometryDescriptor()
        self.device = torch.device(device)
        self.net = load_face_net(weights).to(self.device)
        self.name = f"{self.geometry.name}+fer-cnn-{weights_digest(self.net.state_dict())}"
        self.dim = self.geometry.dim + self.net.embedding_dim + NUM_CLASSES

    def trained_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def encode(self, inputs: Sequence[Face]) -> torch.Tensor:
        crops = np.stack([network_crop(face) for face in inputs]) if inputs else np.zeros((0, INPUT_SIZE, INPUT_SIZE))
        return self.encode_crops(crops.astype(np.uint8), self.geometry.encode(inputs))

    def encode_crops(
        self, crops: np.ndarray, geometry: torch.Tensor | np.ndarray, batch_size: int = 512
    ) -> torch.Tensor:
        """`encode` from what it computes of each face: its `network_crop` (uint8 [B, 48, 48]) and geometry
        descriptor ([B, 181]); the recipe keeps both from one face-mesh pass over its images."""
        rows = [torch.as_tensor(geometry, dtype=torch.float32).reshape(len(crops), self.geometry.dim)]
        learned = [torch.zeros((0, self.net.embedding_dim + NUM_CLASSES))]
        for start in range(0, len(crops), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size])).to(self.device)
            features, logits = embed_with_mirror(self.net, batch)
            learned.append(torch.cat([features.float().cpu(), logits.float().cpu()], dim=1))
        return torch.cat([*rows, torch.cat(learned)], dim=1)
