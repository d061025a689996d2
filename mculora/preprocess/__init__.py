"""Turning user media into what the encoders take: 16 kHz mono audio, RGB images and faces, clean text.

Every function either returns usable input or raises `UnusableInput` with a reason a person can read
("no face found", "the audio is silent"), so a caller can mark that modality missing and go on.
"""


class UnusableInput(ValueError):
    """An input that cannot be used for its modality; ``str(error)`` is the reason shown to the user."""
