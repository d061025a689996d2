"""Recipes that build the default emotion model from the real unimodal corpora."""
