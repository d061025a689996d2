"""A clip window's vision vector from the vectors of its sampled frames, weighted toward an expression the face holds.

A plain mean lets the neutral frames around a short expression outvote it: a face that is angry for half a second of
a 2 s window is 2 frames against 6. Here each frame is scored by the face network's own logits (the last values of
every `FaceExpressionEncoder` vector): where the network's most likely class for the frame and for the frame before
or after it is the same emotion other than neutral, i.e. an expression held for two frames (half a second at
`FRAME_RATE` 4/s), the score is the smaller of the two frames' probabilities of it; otherwise 0. The window's vector
is the mean of its frames weighted by softmax(score / `TEMPERATURE`). Requiring the neighbour to agree is what keeps
neutral stretches neutral: a single frame that looks expressive (a blink, a mouth mid-word, a face between two
expressions) does not count: weighting each frame by its own expressiveness (1 - its neutral probability) found as
many peaks but turned far more windows of neutral faces expressive (benchmarks/window_pooling.py).
A vision encoder without those logits (the hub profile's CLIP embeddings) is pooled by the plain mean.
"""

from __future__ import annotations

import torch

from mculora.encoders.face_net import NUM_CLASSES
from mculora.encoders.featurize import DROPPED
from mculora.modalities import Modality

# Neutral's place in the face network's logits (`mculora.recipes.sources.EKMAN` order, which serving code does not
# import: tests/test_layout.py).
NEUTRAL = 4
# The lowest temperature (the most weight on a held expression) whose windows of 8 different neutral faces, and of 8
# faces of one emotion, keep the plain mean's label within 1.5 points, chosen on one half of FER-2013 PublicTest and
# reported on the other (benchmarks/window_pooling.py). Lower ones find more peaks and turn more neutral windows
# expressive.
TEMPERATURE = 1.0


def frame_weights(vectors: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """``vectors`` [frames, dim] of the frames with a face, in time order, ending in the face network's Ekman logits
    -> weights [frames] that sum to 1 (see the module docstring; a lone frame gets weight 1)."""
    probabilities = vectors[:, -NUM_CLASSES:].float().softmax(dim=1)
    best = probabilities.argmax(dim=1)
    confidence = probabilities.gather(1, best[:, None])[:, 0] * (best != NEUTRAL)
    held_pairs = torch.where(best[1:] == best[:-1], torch.minimum(confidence[1:], confidence[:-1]), 0.0)  # k, k+1
    held = torch.maximum(torch.nn.functional.pad(held_pairs, (1, 0)), torch.nn.functional.pad(held_pairs, (0, 1)))
    return (held / temperature).softmax(dim=0)


def window_vision(windows, vectors, frames, video_reason: str | None, dropped, weighted: bool) -> None:
    """Per `ClipWindow`: its vision vector into ``vectors``, pooled from its frames ``(time, vector or None, faces
    seen)`` that show a face by `frame_weights` (``weighted``: the encoder's vectors end in the face network's
    logits) or the plain mean, with each frame's time and weight in ``frame_weights``; or why it has none."""
    for window, usable in zip(windows, vectors, strict=True):
        if Modality.VISION in dropped or video_reason:
            window.missing[Modality.VISION.value] = DROPPED if Modality.VISION in dropped else video_reason
            continue
        inside = [f for f in frames if window.start <= f[0] < window.end]
        window.faces_seen = max((seen for _, _, seen in inside), default=0)
        faces = [(time, vector) for time, vector, _ in inside if vector is not None]
        window.face = bool(faces)
        if not faces:
            window.missing[Modality.VISION.value] = f"no face found in the window's {len(inside)} sampled frame(s)"
            continue
        stacked = torch.stack([vector for _, vector in faces])
        weights = frame_weights(stacked) if weighted else torch.full((len(faces),), 1 / len(faces))
        usable[Modality.VISION] = weights.to(stacked.dtype) @ stacked
        window.frame_weights = [(round(t, 3), round(float(w), 4)) for (t, _), w in zip(faces, weights, strict=True)]
