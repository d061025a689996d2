"""Text cleanup: the text encoder sees one line of normalised text of bounded length."""

from __future__ import annotations

import unicodedata

from mculora.preprocess import UnusableInput

MAX_CHARACTERS = 1000  # about 200 words, far more than one utterance; MiniLM reads at most 256 tokens anyway


def prepare_text(text: object) -> str:
    """Normalise Unicode (NFKC), drop control characters, collapse whitespace and cap the length."""
    if text is None:
        raise UnusableInput("no text given")
    if not isinstance(text, str):
        raise UnusableInput(f"text must be a string, not {type(text).__name__}")
    normalised = unicodedata.normalize("NFKC", text)
    visible = "".join(" " if unicodedata.category(c).startswith(("C", "Z")) else c for c in normalised)
    cleaned = " ".join(visible.split())[:MAX_CHARACTERS].strip()
    if not cleaned:
        raise UnusableInput("the text is empty")
    return cleaned
