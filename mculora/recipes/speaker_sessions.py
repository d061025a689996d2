"""Simulated sessions: a voice moved by the statistics of its speaker's other recordings.

At run time a person's profile holds a session once they let their inputs grow it (`mculora.person`): from
``session_min`` inputs on, their voice vectors move by ``population_mean - session_mean``, which takes the
speaker's own offset (pitch range, microphone, corpus) out of the vector. A fusion that only ever trained on raw
voices reads such moved vectors with weights fitted to another distribution. So the recipe shows it both: a share
of the training pairs carry a voice moved by a session drawn from the same speaker's other training clips, the
temperatures are fitted on validation pairs with and without a session, and the reports score unseen speakers
and an unseen corpus both ways. A session is always drawn from the speaker's *other* recordings, whatever they
express, so the scored clip never sits in its own statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Sessions of this many of the speaker's other clips: from the run-time rule's minimum to the length of a short
# conversation, so the fusion sees the noise of a barely long enough session as well as a settled one.
SESSION_SIZES = (16, 48)


@dataclass
class SpeakerSessions:
    """One pool's vectors, who speaks each, and the population mean a session moves them towards."""

    vectors: np.ndarray  # float32 [N, D]
    speakers: np.ndarray  # str [N]
    population_mean: np.ndarray  # float32 [D]: what the fusion standardises its inputs by
    sizes: tuple[int, int] = SESSION_SIZES

    @classmethod
    def of(
        cls, vectors: np.ndarray, ids: Sequence[str], speaker_of: Mapping[str, str], population_mean: np.ndarray
    ) -> SpeakerSessions:
        """A pool's ``vectors`` and item ``ids`` row by row, with their speakers (``speaker_of``: id -> speaker)."""
        return cls(vectors, np.array([speaker_of[item] for item in ids]), np.asarray(population_mean, np.float32))

    def __post_init__(self) -> None:
        self._rows = {speaker: np.flatnonzero(self.speakers == speaker) for speaker in np.unique(self.speakers)}

    def moved(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The vectors of ``rows`` [K, D], each moved by a fresh session of its speaker's other rows (as many as
        a size drawn from ``sizes`` allows)."""
        out = self.vectors[rows].copy()
        for position, row in enumerate(rows):
            others = self._rows[self.speakers[row]]
            others = others[others != row]
            if not len(others):
                continue
            size = min(len(others), int(rng.integers(self.sizes[0], self.sizes[1] + 1)))
            session = rng.choice(others, size, replace=False)
            out[position] += self.population_mean - self.vectors[session].mean(0)
        return out

    def all_moved(self, seed: int) -> np.ndarray:
        """Every vector [N, D], each moved by one seeded session: a fixed draw, for evaluation."""
        return self.moved(np.arange(len(self.vectors)), np.random.default_rng(seed))
