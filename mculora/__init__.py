"""mculora: robust incomplete multimodal emotion recognition with MCULoRA."""

__version__ = "0.1.0"
