"""Where and how the demo runs: the startup report a hosted app logs, the ZeroGPU settings, and the server's limits.

A Space's logs are all its owner sees of the machine, so the app states at startup which device it chose and why,
with the torch and CUDA builds, the checkpoint and its encoders. A CUDA 13 torch on a host whose NVIDIA driver is
too old reports no GPU and the app quietly runs on the CPU; the report says so in words.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set to "true" by Hugging Face on ZeroGPU Spaces
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")
# ZeroGPU bills each call at the duration it requests, and a shorter request is queued sooner; a call that overruns
# is aborted. The slowest event (the 7-combination ablation on a 2 s video) takes a fraction of a second even on a
# CPU, a process's first call a second or two (benchmarks/demo_latency.py measures both); 10 s leaves room for a cold
# GPU start on top, at a sixth of the default 60 s.
GPU_SECONDS = 10
# A clip of the 120 s cap takes seconds on a CPU (benchmarks/clip.py), most of it the face mesh, which runs on the CPU
# on any hardware; 60 s leaves room for a slower machine and a cold start.
CLIP_GPU_SECONDS = 60

# Limits of the public page (documented in the README). Uploads above MAX_UPLOAD are refused by the server before
# they reach the model: 50 MB holds a minute of phone video or ten minutes of CD-quality audio, more than any one
# utterance needs (audio is decoded only up to its first minute, images only up to 50 megapixels).
MAX_UPLOAD = "50mb"
# Events handled at once, sharing one Predictor, and how many may wait; a request beyond that is answered at once with
# "queue is full, try again". The Predictor's own work queues on its one thread (`mculora.serving.torch_thread`), so a
# second event overlaps only its uploads, plots and exports with the first one's prediction.
CONCURRENCY = 16
QUEUE_SIZE = 32
# Every 10 minutes, uploads and outputs Gradio cached more than an hour ago are deleted.
CACHE_CLEANUP = (600, 3600)


def on_zero_gpu() -> bool:
    return os.environ.get(ZERO_GPU_ENV, "").lower() in ("1", "true")


def gpu_task(spaces_module, seconds: int = GPU_SECONDS) -> Callable[[F], F]:
    """``@spaces.GPU(duration=seconds)`` on ZeroGPU, the identity everywhere else (``spaces_module`` may be None)."""
    if spaces_module is None or not on_zero_gpu():
        return lambda fn: fn
    return spaces_module.GPU(duration=seconds)


def nvidia_driver() -> str | None:
    """The kernel driver's version line, when an NVIDIA driver is loaded at all."""
    try:
        return NVIDIA_DRIVER_FILE.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return None


def gpu_fallback_warning() -> str | None:
    """Why there is no GPU although the machine has one, or None."""
    driver = nvidia_driver()
    if torch.cuda.is_available() or driver is None or torch.version.cuda is None:
        return None
    return (
        f"an NVIDIA driver is loaded ({driver}) but this torch {torch.__version__} (a CUDA {torch.version.cuda} "
        f"build) cannot use it, so the model runs on the CPU. CUDA {torch.version.cuda.split('.')[0]} wheels need "
        "a driver that supports that CUDA version (>= 580 for CUDA 13): update the driver or pick other hardware."
    )


def startup_report(device: torch.device, checkpoint: str | Path, config) -> list[str]:
    """Lines for the log: the device and the builds behind it, then what the model is."""
    cuda = torch.version.cuda or "none (CPU-only build)"
    # ZeroGPU forbids initialising CUDA in the main process; its GPU is attached only inside @spaces.GPU calls.
    named = device.type == "cuda" and not on_zero_gpu()
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if named else ""
    lines = [
        f"mculora: device {device}{gpu}; torch {torch.__version__}, CUDA build {cuda}, "
        f"torch.cuda.is_available()={torch.cuda.is_available()}, NVIDIA driver {nvidia_driver() or 'none'}; "
        f"Python {platform.python_version()}; ZeroGPU {'yes' if on_zero_gpu() else 'no'}",
        f"mculora: checkpoint {checkpoint} ({config.method}, {config.dataset or 'custom data'}); encoder profile "
        f"'{config.encoders['profile']}': "
        + ", ".join(f"{name} {spec['name']}" for name, spec in config.encoders.items() if isinstance(spec, dict)),
    ]
    warning = gpu_fallback_warning()
    if warning:
        lines.append(f"mculora: WARNING: {warning}")
    return lines
