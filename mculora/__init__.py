"""mculora: robust incomplete multimodal emotion recognition with MCULoRA.

The Predictor is served from `mculora.serving` (``from mculora.serving import Predictor``); the package root stays
light, so that the trainer and the benchmark tools load no serving code."""

__version__ = "0.1.0"

__all__ = ["__version__"]
