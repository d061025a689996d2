"""The convolution stages the face and speech networks are built from (VGG style)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def vgg_layers(widths: Sequence[int]) -> list[nn.Module]:
    """From one input channel: per width, two 3x3 conv-BN-ReLU layers; 2x2 max-pooling between the stages."""
    layers: list[nn.Module] = []
    channels = 1
    for index, width in enumerate(widths):
        if index:
            layers.append(nn.MaxPool2d(2))
        for c_in in (channels, width):
            layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return layers
