"""Serving: the Predictor, clips, plots, the demo's UI and the server's settings. Imports nothing from training."""
