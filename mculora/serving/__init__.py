"""Serving: the Predictor, clips, plots, the demo's UI and the server's settings. Imports nothing from training.

from mculora.serving import Predictor
"""

from mculora.serving.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
