"""Where tensors live. Chosen once: an explicit choice, else ``MCULORA_DEVICE``, else CUDA when present, else CPU."""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "MCULORA_DEVICE"


def select_device(requested: str | torch.device | None = None) -> torch.device:
    choice = requested if requested is not None else os.environ.get(DEVICE_ENV) or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(choice)!r} was requested but CUDA is not available on this machine")
    return device
