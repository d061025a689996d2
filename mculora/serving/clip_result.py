"""What scoring a clip gives back: each window's rows under every combination it has, the clip-level summary, the
face tracks, and the exports (records, CSV, JSON). The Clip tab's figures, the annotated video and the page depend on
these types, not on the scoring (`mculora.serving.clip`)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field

from mculora.serving.prediction import CombinationRow

ALL = "all"  # the pseudo-combination "every modality the window has"


@dataclass
class FaceTrack:
    """A sampled frame in which a face was found: when, where (``box`` in the upright frame's pixels) and the
    frame's size, for drawing on the clip."""

    time: float
    box: tuple[int, int, int, int]
    frame_size: tuple[int, int]


@dataclass
class ClipWindow:
    index: int
    start: float
    end: float
    face: bool
    faces_seen: int  # the most faces one of its frames showed (0: none); the largest is the one scored
    speech: bool
    text: str | None
    missing: dict[str, str]  # modality -> why it is not used in this window
    rows: list[CombinationRow] = field(default_factory=list)  # every subset of its modalities, per method
    # (time, weight) of each frame with a face that its vision vector pools; the heaviest carried the window
    frame_weights: list[tuple[float, float]] = field(default_factory=list)

    def all_modalities(self, method: str) -> CombinationRow | None:
        """``method``'s row from every modality the window has (None if it has none): rows come largest subset
        first."""
        return next((row for row in self.rows if row.method == method), None)

    def row(self, method: str, combination: str) -> CombinationRow | None:
        """``method``'s row of ``combination`` ("at", ...; `ALL`: `all_modalities`), None where the window lacks it."""
        if combination == ALL:
            return self.all_modalities(method)
        return next((r for r in self.rows if r.method == method and r.combination == combination), None)


@dataclass
class ClipResult:
    name: str
    duration_s: float
    window_s: float
    hop_s: float
    labels: list[str]
    methods: list[str]
    windows: list[ClipWindow]
    summary: dict[str, dict[str, dict[str, float]]]  # method -> combination (or "all") -> pooled probabilities
    notes: list[str]
    timings_ms: dict[str, float]
    tracks: list[FaceTrack]
    # Scored with a person's profile: ``summary`` is with it, and this the same pooling without it.
    without_profile: dict[str, dict[str, dict[str, float]]] | None = None

    def label(self, method: str | None = None, combination: str = ALL) -> str | None:
        pooled = self.summary.get(method or self.methods[0], {}).get(combination)
        return max(pooled, key=pooled.get) if pooled else None

    def records(self) -> list[dict]:
        """One flat row per window, method and combination: what the CSV and JSON exports hold."""
        records = []
        for window in self.windows:
            for row in window.rows:
                records.append(
                    {
                        "window": window.index,
                        "start_s": round(window.start, 3),
                        "end_s": round(window.end, 3),
                        "method": row.method,
                        "combination": row.combination,
                        "all_modalities": row is window.all_modalities(row.method),
                        "label": row.label,
                        **{label: round(row.probabilities[label], 6) for label in self.labels},
                        "face": window.face,
                        "faces_seen": window.faces_seen,
                        "frame_weights": " ".join(f"{time:.2f}:{weight:.3f}" for time, weight in window.frame_weights),
                        "speech": window.speech,
                        "text": window.text or "",
                    }
                )
        return records

    def to_dict(self) -> dict:
        """JSON-ready: the summary, each window with its flags, reasons and rows, and the notes."""
        return {
            "clip": self.name,
            "duration_s": round(self.duration_s, 3),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "labels": self.labels,
            "methods": self.methods,
            "pooling": "certainty-weighted mean of window probabilities, weight 1 - entropy / log(classes)",
            "summary": self.summary,
            "label": {method: self.label(method) for method in self.methods},
            "without_profile": self.without_profile,
            "windows": [
                {**{k: v for k, v in asdict(window).items() if k != "rows"}, "rows": [asdict(r) for r in window.rows]}
                for window in self.windows
            ],
            "notes": self.notes,
            "timings_ms": {stage: round(ms, 1) for stage, ms in self.timings_ms.items()},
        }

    def csv(self) -> str:
        records = self.records()
        buffer = io.StringIO()
        columns = list(records[0]) if records else ["window", "start_s", "end_s", "method", "combination"]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()

    def json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


SUMMARY_COLUMNS = ["clip", "method", "combination", "label", "windows", "windows_with_face", "windows_with_speech"]


def summary_records(record: dict, clip: str) -> list[dict]:
    """The summary rows of one clip's JSON record (`ClipResult.to_dict`, as written or read back): per method and
    combination (``all``: each window's every modality) its pooled probabilities and label, with how many windows the
    clip has and how many of them showed a face or held speech. Columns: `SUMMARY_COLUMNS`, then one per label."""
    windows = record["windows"]
    counts = {
        "windows": len(windows),
        "windows_with_face": sum(w["face"] for w in windows),
        "windows_with_speech": sum(w["speech"] for w in windows),
    }
    return [
        {
            "clip": clip,
            "method": method,
            "combination": combination,
            "label": max(pooled, key=pooled.get),
            **counts,
            **{label: round(p, 6) for label, p in pooled.items()},
        }
        for method, combinations in record["summary"].items()
        for combination, pooled in combinations.items()
        if pooled
    ]
