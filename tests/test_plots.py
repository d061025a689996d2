import csv
import io
import json

import numpy as np

from mculora.encoders.featurize import UtteranceFeatures
from mculora.preprocess.vision import Face, _make_face
from mculora.serving import plots
from mculora.serving.predictor import CombinationRow, Contributions, Prediction

LABELS = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]


def make_prediction() -> Prediction:
    rng = np.random.default_rng(0)
    base, shared, adapter = (dict(zip(LABELS, rng.normal(size=len(LABELS)).tolist(), strict=True)) for _ in range(3))
    logits = {label: base[label] + shared[label] + adapter[label] for label in LABELS}
    exp = np.exp(np.array(list(logits.values())))
    probabilities = dict(zip(LABELS, (exp / exp.sum()).tolist(), strict=True))
    return Prediction(
        label=max(probabilities, key=probabilities.get),
        probabilities=probabilities,
        used=["audio", "text"],
        missing={"vision": "not given"},
        contributions=Contributions(
            combination="at",
            base=base,
            shared=shared,
            adapter=adapter,
            logits=logits,
            combination_specific={"audio": 0.15, "text": 0.225, "vision": 0.0},
        ),
        timings_ms={},
        notes=[],
        features=UtteranceFeatures({}, {}),
    )


def make_rows() -> list[CombinationRow]:
    rng = np.random.default_rng(1)
    rows = []
    for combination in ("at", "a", "t"):
        p = rng.dirichlet(np.ones(len(LABELS)))
        rows.append(CombinationRow(combination, LABELS[int(p.argmax())], dict(zip(LABELS, p.tolist(), strict=True))))
    return rows


def test_label_colours_are_fixed_for_ekman_and_distinct_otherwise():
    assert plots.label_colours(["sadness", "anger"]) == {"sadness": "#0072B2", "anger": "#D55E00"}
    assert plots.label_colours(["happy"])["happy"] == plots.EMOTION_COLOURS["happiness"]
    other = plots.label_colours(["excited", "frustrated", "anger", "calm"])
    assert other["anger"] == plots.EMOTION_COLOURS["anger"]
    assert len(set(other.values())) == len(other)


def test_emotion_distribution_bars_are_the_probabilities():
    prediction = make_prediction()
    figure = plots.emotion_distribution(prediction)
    (bar,) = figure.data
    assert list(bar.y) == LABELS
    np.testing.assert_allclose(bar.x, [prediction.probabilities[label] for label in LABELS])
    assert bar.text[LABELS.index(prediction.label)] == f"{prediction.probabilities[prediction.label]:.1%}"
    assert max(bar.marker.line.width) == bar.marker.line.width[LABELS.index(prediction.label)] > 0
    assert figure.layout.title.text == f"{prediction.label} — from audio + text"
    assert 320 <= figure.layout.height <= 380


def test_adapter_contributions_sum_to_the_logits():
    prediction = make_prediction()
    figure = plots.adapter_contributions(prediction)
    assert figure.layout.barmode == "relative"
    left = [trace for trace in figure.data if trace.xaxis == "x"]
    bars = [trace for trace in left if trace.type == "bar"]
    (total,) = [trace for trace in left if trace.type == "scatter"]
    assert len(bars) == 3
    logits = [prediction.contributions.logits[label] for label in LABELS]
    np.testing.assert_allclose(np.sum([bar.y for bar in bars], axis=0), logits)
    np.testing.assert_allclose(total.y, logits)
    assert "'at' (audio + text)" in figure.layout.title.text
    # The left subtitle gives each term's share of the predicted class's logit; they add up to 100 %.
    c = prediction.contributions
    parts = [abs(c.base[prediction.label]), abs(c.shared[prediction.label]), abs(c.adapter[prediction.label])]
    subtitle = figure.layout.annotations[0].text
    assert f"combination adapter {parts[2] / sum(parts):.0%}" in subtitle and prediction.label in subtitle

    (sizes,) = [trace for trace in figure.data if trace.xaxis == "x2"]
    assert list(sizes.x) == ["audio", "text", "vision"]
    assert list(sizes.y) == [15.0, 22.5, 0.0]  # percent
    assert sizes.text[2] == "absent"


def test_absent_modality_reads_zero_even_if_its_share_is_not():
    prediction = make_prediction()
    prediction.contributions.combination_specific["vision"] = 0.7
    (sizes,) = [trace for trace in plots.adapter_contributions(prediction).data if trace.xaxis == "x2"]
    assert sizes.y[2] == 0.0 and sizes.text[2] == "absent"


def test_ablation_heatmap_shows_the_matrix_and_the_predictions():
    rows = make_rows()
    figure = plots.ablation_heatmap(rows, LABELS)
    (heatmap,) = figure.data
    np.testing.assert_allclose(heatmap.z, [[row.probabilities[label] for label in LABELS] for row in rows])
    assert list(heatmap.y) == [f"{row.combination} → {row.label}" for row in rows]
    assert figure.layout.yaxis.autorange == "reversed"  # first combination on top
    # One outline per row, round its predicted cell.
    assert [(shape.x0 + 0.5, shape.y0 + 0.5) for shape in figure.layout.shapes] == [
        (LABELS.index(row.label), i) for i, row in enumerate(rows)
    ]
    assert heatmap.text[0][LABELS.index(rows[0].label)].startswith("<b>")


def test_ablation_table_csv_and_json_round_trip():
    rows = make_rows()
    table = plots.ablation_table(rows, LABELS)
    assert table["headers"][:2] == ["combination", "predicted"]
    assert [line[:2] for line in table["data"]] == [[row.combination, row.label] for row in rows]
    assert table["data"][0][2] == round(100 * rows[0].probabilities["anger"], 1)

    parsed = list(csv.DictReader(io.StringIO(plots.ablation_csv(rows, LABELS))))
    assert [line["combination"] for line in parsed] == [row.combination for row in rows]
    for line, row in zip(parsed, rows, strict=True):
        assert line["predicted"] == row.label
        assert {label: float(line[label]) for label in LABELS} == row.probabilities  # exact, not rounded

    data = json.loads(plots.ablation_json(rows, LABELS))
    assert data["labels"] == LABELS
    assert [CombinationRow(**row) for row in data["rows"]] == rows


def make_face() -> Face:
    """A face whose landmarks span the box (100, 50)-(180, 146) of a 400x300 image, with one at its centre. Its crop
    square (1.25 x 96 = 120 px) starts at the whole pixel (80, 38), so no rounding blurs the expected mapping."""
    rng = np.random.default_rng(2)
    inner = np.column_stack([rng.uniform(100, 180, 50), rng.uniform(50, 146, 50), np.zeros(50)])
    corners = np.array([[100, 50, 0], [180, 146, 0], [140, 98, 0]], dtype=float)
    landmarks = np.vstack([corners, inner]).astype(np.float32)
    crop = np.full((224, 224, 3), 128, dtype=np.uint8)
    return Face(landmarks=landmarks, box=(100, 50, 180, 146), crop=crop, image_size=(400, 300))


def test_crop_mapping_centres_the_box_and_scales_its_longer_side():
    face = make_face()
    centre, top, bottom = plots.to_crop_coordinates(face, np.array([[140, 98], [140, 50], [140, 146]]))
    np.testing.assert_allclose(centre, [112, 112])
    # The box is 96 px tall; the crop square is 1.25 times that, so the box fills 1/1.25 of the crop's height.
    np.testing.assert_allclose(bottom[1] - top[1], 224 / 1.25)


def test_crop_mapping_matches_how_vision_cuts_the_crop():
    # Each pixel's red and green hold its own x and y, so the crop shows where each of its pixels came from.
    y, x = np.mgrid[0:200, 0:200]
    image = np.stack([x, y, np.zeros_like(x)], axis=2).astype(np.uint8)
    rng = np.random.default_rng(4)
    landmarks = np.column_stack([rng.uniform(60.3, 140.7, 40), rng.uniform(40.2, 150.9, 40), np.zeros(40)])
    face = _make_face(image, landmarks.astype(np.float32))
    mapped = plots.to_crop_coordinates(face, face.landmarks)
    seen = face.crop[mapped[:, 1].astype(int), mapped[:, 0].astype(int), :2].astype(float)
    # Within a source pixel (plus the half pixel between a pixel's corner and its centre).
    np.testing.assert_allclose(seen, face.landmarks[:, :2], atol=1.5)


def test_face_overlay_marks_the_landmarks():
    face = make_face()
    overlay = plots.face_overlay(face)
    assert overlay.shape == face.crop.shape and overlay.dtype == np.uint8
    assert tuple(overlay[112, 112]) == plots.LANDMARK_COLOUR
    assert (face.crop == 128).all()  # the crop itself is left alone
    changed = (overlay != face.crop).any(axis=2)
    assert 0 < changed.mean() < 0.2


def test_conversation_timeline_has_a_line_per_label():
    rng = np.random.default_rng(3)
    turns = []
    for _ in range(4):
        p = rng.dirichlet(np.ones(len(LABELS)))
        turns.append((LABELS[int(p.argmax())], dict(zip(LABELS, p.tolist(), strict=True))))
    figure = plots.conversation_timeline(turns, LABELS)
    assert [trace.name for trace in figure.data] == LABELS
    anger = figure.data[0]
    assert list(anger.x) == [1, 2, 3, 4]
    np.testing.assert_allclose(anger.y, [probabilities["anger"] for _, probabilities in turns])
    assert list(anger.customdata) == [label for label, _ in turns]


def test_conversation_timeline_starts_empty():
    assert len(plots.conversation_timeline([], LABELS).data) == len(LABELS)
