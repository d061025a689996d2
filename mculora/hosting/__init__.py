"""Hosting: the Hugging Face Hub round trip and the Space bundle."""
