"""Figures and the table of a scored clip (`mculora.serving.clip.ClipResult`): the emotion over time, and the ablation
over time. Pure functions like `mculora.serving.plots`, whose colours and layout they share."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mculora.modalities import COMBINATIONS
from mculora.serving.clip_result import ALL, ClipResult
from mculora.serving.plots import _layout, label_colours


def _centre(window) -> float:
    return round((window.start + window.end) / 2, 3)


def clip_timeline(result: ClipResult, method: str | None = None, combination: str = ALL) -> go.Figure:
    """One line per emotion across the windows (at each window's centre) for one method and combination; a window
    without that combination leaves a gap. The clip's pooled label is in the title; with vision, the face frames are
    marked along the bottom by how much they carried their windows."""
    method = method or result.methods[0]
    colours = label_colours(result.labels)
    rows = [(window, window.row(method, combination)) for window in result.windows]
    figure = go.Figure()
    for label in result.labels:
        figure.add_trace(
            go.Scatter(
                x=[_centre(window) for window, _ in rows],
                y=[row.probabilities[label] if row is not None else None for _, row in rows],
                name=label,
                mode="lines+markers",
                line={"color": colours[label], "width": 2},
                marker={"size": [9 if row is not None and row.label == label else 4 for _, row in rows]},
                customdata=[
                    f"{w.start:.1f}–{w.end:.1f} s, {row.combination if row else '-'}: {row.label if row else '-'}"
                    for w, row in rows
                ],
                hovertemplate=f"{label} %{{y:.1%}}<br>%{{customdata}}<extra></extra>",
                connectgaps=False,
            )
        )
    if combination == ALL or "v" in combination:
        _mark_face_frames(figure, result)
    figure.update_xaxes(title="seconds (window centre)", range=[0, max(result.duration_s, 0.1)])
    figure.update_yaxes(range=[0, 1], tickformat=".0%")
    which = "every modality each window has" if combination == ALL else combination
    label = result.label(method, combination)
    title = f"Emotion over time ({which}, {method}): clip {label or 'not scored'}"
    return _layout(figure, title, 340)


def _mark_face_frames(figure: go.Figure, result: ClipResult) -> None:
    """Each sampled frame with a face as a mark along the bottom, sized by the most it carried of a window's face
    vector relative to an equal share (`mculora.serving.window_pooling`): a held expression's frames stand out."""
    heaviest: dict[float, tuple[float, float, object]] = {}  # time -> (share x frames, weight, window)
    for window in result.windows:
        for time, weight in window.frame_weights:
            relative = weight * len(window.frame_weights)
            if relative > heaviest.get(time, (0.0,))[0]:
                heaviest[time] = (relative, weight, window)
    if not heaviest:
        return
    times = sorted(heaviest)
    figure.add_trace(
        go.Scatter(
            x=times,
            y=[0.0] * len(times),
            name="face frames",
            mode="markers",
            marker={"symbol": "triangle-up", "color": "#555555", "size": [4 + 5 * heaviest[t][0] for t in times]},
            customdata=[
                f"{heaviest[t][1]:.0%} of {heaviest[t][2].start:.1f}–{heaviest[t][2].end:.1f} s" for t in times
            ],
            hovertemplate="frame at %{x:.2f} s: %{customdata}<extra></extra>",
        )
    )


def clip_strip(result: ClipResult, methods: Sequence[str] | None = None) -> go.Figure:
    """Combination x time: each cell is the label a combination predicts for a window, in the label's colour (the
    ablation view over time); one panel per method, stacked."""
    methods = list(methods or result.methods[:1])
    labels = result.labels
    colours = label_colours(labels)
    figure = make_subplots(rows=len(methods), cols=1, subplot_titles=methods if len(methods) > 1 else None)
    # A discrete colour scale: label k fills [k, k + 1) / len(labels).
    scale = []
    for k, label in enumerate(labels):
        scale += [[k / len(labels), colours[label]], [(k + 1) / len(labels), colours[label]]]
    for panel, method in enumerate(methods, start=1):
        present = [c for c in COMBINATIONS if any(w.row(method, c) is not None for w in result.windows)]
        z, text = [], []
        for combination in present:
            cells = [w.row(method, combination) for w in result.windows]
            z.append([labels.index(r.label) + 0.5 if r is not None else None for r in cells])
            text.append(
                [f"{r.label} {r.probabilities[r.label]:.0%}" if r is not None else "not available" for r in cells]
            )
        figure.add_trace(
            go.Heatmap(
                z=z,
                x=[_centre(w) for w in result.windows],
                y=present,
                customdata=text,
                colorscale=scale,
                zmin=0,
                zmax=len(labels),
                showscale=panel == 1,
                colorbar={"tickvals": [k + 0.5 for k in range(len(labels))], "ticktext": labels, "thickness": 12},
                hovertemplate="%{y} at %{x:.1f} s: %{customdata}<extra></extra>",
                xgap=1,
                ygap=1,
            ),
            row=panel,
            col=1,
        )
    figure.update_yaxes(autorange="reversed", type="category")
    figure.update_xaxes(title="seconds (window centre)")
    return _layout(figure, "Predicted emotion per combination over time", 160 + 170 * len(methods))


def clip_table(result: ClipResult, method: str | None = None) -> dict[str, list]:
    """Per window (``gr.Dataframe`` value): its time span, face/speech flags, text, and the label each combination
    predicts for ``method`` (default: the first)."""
    method = method or result.methods[0]
    present = [c for c in COMBINATIONS if any(w.row(method, c) is not None for w in result.windows)]
    data = []
    for w in result.windows:
        every = w.all_modalities(method)
        cells = [w.row(method, c) for c in present]
        data.append(
            [
                f"{w.start:.1f}–{w.end:.1f}",
                f"yes ({w.faces_seen} seen)" if w.face and w.faces_seen > 1 else "yes" if w.face else "no",
                "yes" if w.speech else "no",
                (w.text or "")[:80],
                f"{every.label} {every.probabilities[every.label]:.0%}" if every else "; ".join(w.missing.values()),
                *(f"{r.label} {r.probabilities[r.label]:.0%}" if r else "" for r in cells),
            ]
        )
    return {"headers": ["seconds", "face", "speech", "text", "all modalities", *present], "data": data}
