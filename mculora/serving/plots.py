"""Figures and exports for the demo: pure functions from predictions to plotly figures, arrays and text.

Nothing here imports Gradio or touches files, so every view can be tested from hand-built predictions. Each
emotion keeps one colour across all figures (`label_colours`), drawn from colour-blind-safe palettes:
Okabe & Ito for the Ekman-7 names, Paul Tol's "muted" scheme for any other label set.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mculora.preprocess.vision import Face, crop_square
from mculora.serving.prediction import CombinationRow, Prediction

EMOTION_COLOURS: dict[str, str] = {
    "anger": "#D55E00",
    "disgust": "#009E73",
    "fear": "#CC79A7",
    "happiness": "#E69F00",
    "neutral": "#999999",
    "sadness": "#0072B2",
    "surprise": "#56B4E9",
}
# The dialogue corpora (the IEMOCAP and MELD pickles) spell some Ekman classes differently; same emotion, same colour.
_ALIASES = {"angry": "anger", "happy": "happiness", "joy": "happiness", "sad": "sadness"}
FALLBACK_PALETTE: tuple[str, ...] = (
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
)
# The three logit terms of `Contributions` (Paul Tol's "bright" scheme, also colour-blind safe).
PART_COLOURS = {"base": "#BBBBBB", "shared": "#4477AA", "adapter": "#EE6677"}
SHARE_NAMES = {"base": "base", "shared": "shared adapter", "adapter": "combination adapter"}
LANDMARK_COLOUR = (0, 230, 255)  # cyan stands out on skin tones and on the crop's black padding

HEIGHT = 360
_MARGIN = {"l": 70, "r": 30, "t": 60, "b": 50}


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label: the fixed Ekman colour where the name (or a common spelling of it) is known, otherwise
    the next fallback colour, so a label set keeps the same colours in every figure."""
    fallback = itertools.cycle(FALLBACK_PALETTE)
    colours = {}
    for label in labels:
        known = EMOTION_COLOURS.get(_ALIASES.get(label.lower(), label.lower()))
        colours[label] = known or next(fallback)
    return colours


def _layout(figure: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        height=height,
        margin=_MARGIN,
        template="plotly_white",
    )
    return figure


def _percent(p: float) -> str:
    return f"{p:.1%}"


# -- one prediction --------------------------------------------------------------------------------------------


def emotion_distribution(prediction: Prediction) -> go.Figure:
    """Horizontal bars of every label's probability, in label order (first on top); the prediction stands out."""
    labels = list(prediction.probabilities)
    values = [prediction.probabilities[label] for label in labels]
    colours = label_colours(labels)
    predicted = [label == prediction.label for label in labels]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker={
                "color": [colours[label] for label in labels],
                "opacity": [1.0 if p else 0.45 for p in predicted],
                "line": {"color": "#222222", "width": [2 if p else 0 for p in predicted]},
            },
            text=[_percent(v) for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    # Room right of a 100 % bar for its text; ticks stop at 100 % so the axis still reads as a probability.
    figure.update_xaxes(range=[0, 1.15], tickvals=[0, 0.25, 0.5, 0.75, 1], tickformat=".0%")
    figure.update_yaxes(autorange="reversed", tickvals=labels, ticktext=_bold(labels, prediction.label))
    return _layout(figure, f"{prediction.label} — from {' + '.join(prediction.used)}")


def _bold(labels: Sequence[str], chosen: str) -> list[str]:
    return [f"<b>{label}</b>" if label == chosen else label for label in labels]


def adapter_contributions(prediction: Prediction) -> go.Figure:
    """Left: each class logit split into base, shared-adapter and combination-adapter terms, stacked so that
    negative terms go below zero (they sum to the logit, marked by a diamond); the title gives each term's share of the
    predicted class's logit (by absolute size). Right: per modality, how much this combination's adapters changed its
    representation, in % of it, so one can see what is specific to the combination in each input; absent modalities
    read 0, "absent"."""
    parts = prediction.contributions
    labels = list(parts.logits)
    chosen = {key: abs(getattr(parts, key)[prediction.label]) for key in ("base", "shared", "adapter")}
    total = sum(chosen.values()) or 1.0
    shares = ", ".join(f"{name} {chosen[key] / total:.0%}" for key, name in SHARE_NAMES.items())
    figure = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.72, 0.28],
        horizontal_spacing=0.1,
        subplot_titles=(
            f"Logit = base + shared + combination<br><sup>{prediction.label}: {shares}</sup>",
            "Combination-specific part<br><sup>% of each modality's representation</sup>",
        ),
    )
    # A network without adapters (a peer method) has only the base term: its zero adapter terms are not drawn.
    terms = (
        {"base": parts.base, "shared": parts.shared, "adapter": parts.adapter}
        if parts.adapters
        else {"base": parts.base}
    )
    names = {"base": "base head", "shared": "shared adapter", "adapter": f"combination adapter '{parts.combination}'"}
    for key, values in terms.items():
        figure.add_trace(
            go.Bar(
                x=labels,
                y=[values[label] for label in labels],
                name=names[key],
                marker_color=PART_COLOURS[key],
                hovertemplate=f"%{{x}}: {names[key]} %{{y:+.2f}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    figure.add_trace(
        go.Scatter(
            x=labels,
            y=[parts.logits[label] for label in labels],
            mode="markers",
            name="logit (sum)",
            marker={"symbol": "diamond", "size": 10, "color": "#222222", "line": {"color": "white", "width": 1}},
            hovertemplate="%{x}: logit %{y:+.2f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    modalities = list(parts.combination_specific)
    present = [m in prediction.used for m in modalities]
    sizes = [100 * parts.combination_specific[m] if p else 0.0 for m, p in zip(modalities, present, strict=True)]
    figure.add_trace(
        go.Bar(
            x=modalities,
            y=sizes,
            marker_color=[PART_COLOURS["adapter"] if p else PART_COLOURS["base"] for p in present],
            text=[f"{s:.0f} %" if p else "absent" for s, p in zip(sizes, present, strict=True)],
            textposition="outside",
            cliponaxis=False,
            showlegend=False,
            hovertemplate="%{x}: %{text}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    figure.update_layout(barmode="relative", legend={"orientation": "h", "y": -0.15, "x": 0})
    figure.update_xaxes(tickvals=labels, ticktext=_bold(labels, prediction.label), row=1, col=1)
    figure.update_yaxes(zeroline=True, zerolinecolor="#444444", row=1, col=1)
    modality_names = " + ".join(prediction.used)
    if not parts.adapters:
        title = f"Logit contributions — {prediction.method} has no adapters: all of it is the base ({modality_names})"
        return _layout(figure, title, 380)
    return _layout(figure, f"Logit contributions — combination adapter '{parts.combination}' ({modality_names})", 380)


# -- the ablation view: one input under every combination of its modalities -----------------------------------


def _by_method(rows: Sequence[CombinationRow]) -> dict[str, list[CombinationRow]]:
    """The rows of each method, in the order the methods first appear."""
    groups: dict[str, list[CombinationRow]] = {}
    for row in rows:
        groups.setdefault(row.method, []).append(row)
    return groups


def ablation_heatmap(rows: Sequence[CombinationRow], labels: Sequence[str]) -> go.Figure:
    """Combination x emotion probabilities, first row on top, one panel per method side by side. Each row's tick
    names its prediction ("at → anger") and that cell is outlined with bold text, so disagreements between
    combinations (and between methods) show at a glance."""
    labels = list(labels)
    groups = _by_method(rows)
    figure = make_subplots(
        rows=1, cols=len(groups), subplot_titles=list(groups) if len(groups) > 1 else None, horizontal_spacing=0.16
    )
    for col, group in enumerate(groups.values(), start=1):
        z = [[row.probabilities[label] for label in labels] for row in group]
        winners = [labels.index(row.label) for row in group]
        text = [
            [f"<b>{_percent(p)}</b>" if j == winner else _percent(p) for j, p in enumerate(line)]
            for line, winner in zip(z, winners, strict=True)
        ]
        figure.add_trace(
            go.Heatmap(
                z=z,
                x=labels,
                y=[f"{row.combination} → {row.label}" for row in group],
                text=text,
                texttemplate="%{text}",
                colorscale="Blues",
                zmin=0,
                zmax=1,
                showscale=col == len(groups),
                colorbar={"tickformat": ".0%", "thickness": 12},
                hovertemplate="%{y}<br>%{x}: %{z:.1%}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        # Categorical axes put category i at coordinate i, so a cell spans i ± 0.5.
        for i, j in enumerate(winners):
            figure.add_shape(
                type="rect",
                x0=j - 0.5,
                x1=j + 0.5,
                y0=i - 0.5,
                y1=i + 0.5,
                line={"color": "#222222", "width": 2},
                row=1,
                col=col,
            )
    figure.update_yaxes(autorange="reversed")
    figure.update_xaxes(side="top")
    figure.update_annotations(yshift=34)  # the method names above the emotion names on the top axes
    _layout(figure, "Prediction under each combination of modalities")
    # Wider left margin for the "atv → happiness" ticks; taller top for the emotion names above the cells.
    return figure.update_layout(margin={**_MARGIN, "l": 120, "t": 130 if len(groups) > 1 else 90})


def _method_column(rows: Sequence[CombinationRow]) -> bool:
    """Tables name each row's method only when they hold more than one."""
    return len(_by_method(rows)) > 1


def ablation_table(rows: Sequence[CombinationRow], labels: Sequence[str]) -> dict[str, list]:
    """``{"headers": [...], "data": [[...], ...]}``, which ``gr.Dataframe`` takes as a value (headers included),
    so one output sets both. Probabilities are percentages rounded to 0.1 for reading; the exports keep them exact."""
    method = _method_column(rows)
    return {
        "headers": [*(["method"] if method else []), "combination", "predicted", *(f"{label} %" for label in labels)],
        "data": [
            [
                *([row.method] if method else []),
                row.combination,
                row.label,
                *(round(100 * row.probabilities[label], 1) for label in labels),
            ]
            for row in rows
        ],
    }


def ablation_csv(rows: Sequence[CombinationRow], labels: Sequence[str]) -> str:
    """CSV text: ``[method,]combination,predicted,<label>...`` with exact probabilities in [0, 1]."""
    method = _method_column(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*(["method"] if method else []), "combination", "predicted", *labels])
    for row in rows:
        cells = [row.combination, row.label, *(repr(row.probabilities[label]) for label in labels)]
        writer.writerow([row.method, *cells] if method else cells)
    return buffer.getvalue()


def ablation_record(rows: Sequence[CombinationRow], labels: Sequence[str]) -> dict:
    """``{"labels": [...], "rows": [{"combination", "label", "probabilities": {label: p}, "method"}]}``, the
    probabilities in label order: the ``/ablate`` answer and the JSON export."""
    return {
        "labels": list(labels),
        "rows": [
            {
                "combination": row.combination,
                "label": row.label,
                "probabilities": {label: row.probabilities[label] for label in labels},
                "method": row.method,
            }
            for row in rows
        ],
    }


def ablation_json(rows: Sequence[CombinationRow], labels: Sequence[str]) -> str:
    """`ablation_record` as JSON text."""
    return json.dumps(ablation_record(rows, labels), indent=2)


# -- what the vision encoder saw --------------------------------------------------------------------------------


def to_crop_coordinates(face: Face, points: np.ndarray) -> np.ndarray:
    """Image pixels [N, >=2] -> pixels of ``face.crop`` [N, 2] (the crop is `crop_square` resized)."""
    left, top, side = crop_square(face.landmarks)
    corner = np.array([left, top])
    scale = np.array([face.crop.shape[1], face.crop.shape[0]]) / side
    return (np.asarray(points, dtype=float)[:, :2] - corner) * scale


# A 5-pixel plus per landmark: visible on a 224 px crop without hiding the face under 478 blobs.
_DOT = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def face_overlay(face: Face, colour: tuple[int, int, int] = LANDMARK_COLOUR) -> np.ndarray:
    """The face crop (uint8 RGB) with its landmarks drawn as small dots: what the model saw."""
    overlay = face.crop.copy()
    height, width = overlay.shape[:2]
    points = np.floor(to_crop_coordinates(face, face.landmarks)).astype(int)
    for dx, dy in _DOT:
        x, y = points[:, 0] + dx, points[:, 1] + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        overlay[y[inside], x[inside]] = colour
    return overlay


# -- a conversation ---------------------------------------------------------------------------------------------


def conversation_timeline(turns: Sequence[tuple[str, dict[str, float]]], labels: Sequence[str]) -> go.Figure:
    """One line per label across the turns (``(predicted label, probabilities)`` each, oldest first); the hover
    names each turn's prediction, and the predicted label's point is drawn larger."""
    colours = label_colours(labels)
    steps = list(range(1, len(turns) + 1))
    predicted = [label for label, _ in turns]
    figure = go.Figure()
    for label in labels:
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=[probabilities[label] for _, probabilities in turns],
                name=label,
                mode="lines+markers",
                line={"color": colours[label], "width": 2},
                marker={"size": [10 if p == label else 5 for p in predicted]},
                customdata=predicted,
                hovertemplate=f"turn %{{x}}: {label} %{{y:.1%}}<br>predicted: %{{customdata}}<extra></extra>",
            )
        )
    # Whole turns only; about ten ticks at most, so a long conversation stays readable.
    figure.update_xaxes(title="turn", tick0=1, dtick=max(1, -(-len(turns) // 10)))
    figure.update_yaxes(range=[0, 1], tickformat=".0%")
    return _layout(figure, "Emotion across the conversation", 340)
