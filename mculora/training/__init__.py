"""Training: the trainer, evaluation, metrics, calibration, method comparison, adaptation and adapter health."""
