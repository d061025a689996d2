"""mculora: robust incomplete multimodal emotion recognition with MCULoRA."""

__version__ = "0.1.0"

__all__ = ["Prediction", "Predictor", "__version__"]


def __getattr__(name: str):
    # The Predictor pulls in mediapipe and transformers; import it only when asked for, so the trainer and the
    # benchmark tools stay light.
    if name in ("Predictor", "Prediction"):
        from mculora.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'mculora' has no attribute {name!r}")
