"""The model card (README.md) and confusion-matrix figure of a checkpoint of `mculora.recipes.default`, written from
its metrics.json: the default MCULoRA checkpoint, or a peer method's trained by the same recipe."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mculora.recipes.model_card_text import ADAPTER_HEALTH, TEMPLATE
from mculora.recipes.sources import EKMAN
from mculora.training.evaluate import CONDITIONS

FIGURE = "confusion_matrices.png"
WIDTH = 116  # the card's line length

# method -> (display name, what its network does with the 7 combinations), for the card's title and training section
METHOD_TEXT = {
    "mcu-lora": (
        "MCULoRA",
        "MCULoRA learns to route each of the 7 modality combinations to its own low-rank adapters",
    ),
    "mplmm": (
        "MPLMM",
        "MPLMM learns prompts that stand in for each missing modality (generated from the present ones) and mark each "
        "missing type, over one late-fusion backbone shared by all 7 modality combinations",
    ),
    "wander": (
        "Wander",
        "Wander learns one late-fusion backbone plus a CP-decomposed low-rank multimodal adapter in which an absent "
        "modality contributes a learned factor instead of a zero",
    ),
    "cggm": (
        "CGGM",
        "CGGM trains MCULoRA's network while scaling each modality encoder's gradients from per-modality classifiers' "
        "accuracy gains and aligning the head's modality blocks with them",
    ),
    "baseline": ("the baseline", "the baseline learns one late-fusion backbone, without adapters or prompts"),
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def _top_class(r: dict) -> str:
    """The collapse check's most predicted class and its share, flagged when over the line."""
    return f"{r['largest']} {_pct(r['largest_share'])}" + (" (**collapsed**)" if r["collapsed"] else "")


def summary_table(metrics: dict) -> str:
    """Per-combination test table (label-paired test samples): accuracy, macro-F1 and per-class recall."""
    rows = []
    for condition in CONDITIONS:
        r = metrics["paired_test"][condition]
        recalls = [_pct(r["recall"].get(name, float("nan"))) for name in EKMAN]
        rows.append([condition, _pct(r["accuracy"]), _pct(r["macro_f1"]), *recalls])
    return _table(["condition", "accuracy", "macro-F1", *(f"recall {name}" for name in EKMAN)], rows)


def unimodal_table(metrics: dict) -> str:
    return _table(
        ["modality / test set", "items", "accuracy", "macro-F1", "UA"],
        (
            [name, r["n"], _pct(r["accuracy"]), _pct(r["macro_f1"]), _pct(r["ua"])]
            for name, r in metrics["unimodal_test"].items()
        ),
    )


def iemocap4_table(metrics: dict) -> str:
    subset = metrics["iemocap4_subset"]
    return _table(
        ["condition", "accuracy", "UA"],
        ([c, _pct(subset[c]["accuracy"]), _pct(subset[c]["ua"])] for c in CONDITIONS),
    )


def ravdess_au_table(metrics: dict) -> str:
    return _table(
        ["condition", "accuracy", "macro-F1"],
        (
            [
                c,
                f"{_pct(r['accuracy'])} ± {_pct(r['accuracy_std'])}",
                f"{_pct(r['macro_f1'])} ± {_pct(r['macro_f1_std'])}",
            ]
            for c, r in metrics["ravdess_au"]["conditions"].items()
        ),
    )


def adapter_table(metrics: dict) -> str:
    """Adapter health: the smallest routed / shared gradient ratio per layer kind, then the decoupling figures."""
    health = metrics["adapters"]
    kinds = {"in_proj": "input projections", "layers": "MLP layers", "fusion": "fusion", "head": "head"}
    ratios = _table(
        ["layers", "smallest gradient ratio"],
        ([name, f"{health['gradient_ratio_min'][kind]:.1e}"] for kind, name in kinds.items()),
    )
    decoupling = _table(
        ["combination", "separability", "distinctness"],
        ([c, f"{f['separability']:.3f}", f"{f['distinctness']:.2f}"] for c, f in health["decoupling"].items()),
    )
    return ratios + "\n\n" + decoupling


def calibration_table(metrics: dict) -> str:
    rows = []
    session = metrics.get("calibration_voice_session")
    for condition in CONDITIONS:
        r = metrics["calibration"][condition]
        row = [condition, f"{r['temperature']:.2f}"] + [f"{r[k]:.3f}" for k in CALIBRATION_FIGURES]
        rows.append(row + ([f"{session[condition]['ece_after']:.3f}"] if session else []))
    columns = ["condition", "temperature", "ECE before", "ECE after", "NLL before", "NLL after"]
    return _table(columns + (["ECE after, voices with a session"] if session else []), rows)


CALIBRATION_FIGURES = ("ece_before", "ece_after", "nll_before", "nll_after")


def cross_fitting_table(metrics: dict) -> str:
    fitting = metrics["cross_fitting"]
    rows = [
        [f"{modality} network alone", _pct(r["out_of_fold_accuracy"]), _pct(r["val_accuracy"])]
        for modality, r in fitting["networks"].items()
    ]
    fusion = fitting["fusion"]
    rows.append(
        [
            "the fusion, all three modalities (pairs)",
            _pct(fusion["train_pairs_accuracy"]),
            _pct(fusion["val_pairs_accuracy"]),
        ]
    )
    return _table(["what", "training items (out of fold)", "validation items"], rows)


def stitch_table(metrics: dict) -> str:
    return _table(
        ["fold / modality", "items both learned from", "correlation as trained", "stitched"],
        (
            [name, r["items"], f"{r['as_trained']:.2f}", f"{r['stitched']:.2f}"]
            for name, r in metrics["cross_fitting"]["stitches"].items()
        ),
    )


def collapse_table(metrics: dict) -> str:
    return _table(
        ["test set / condition", "balanced items", "most predicted class (share, %)"],
        ([name, r["balanced_items"], _top_class(r)] for name, r in metrics["collapse"].items()),
    )


def disagreement_table(metrics: dict) -> str:
    return _table(
        ["pair", "test pairs where one member alone is right", "pair follows the right one", "the wrong one"],
        (
            [pair, r["samples"], _pct(r["follows_right"]), _pct(r["follows_wrong"])]
            for pair, r in metrics["disagreement"].items()
        ),
    )


def unseen_corpus_table(metrics: dict) -> str:
    rows = []
    for direction, r in metrics["unseen_corpus"].items():
        for condition in ("a", "at", "av", "atv"):
            c, followed = r["conditions"][condition], r["disagreement"].get(condition)
            follows = f"{_pct(followed['follows_right'])} / {_pct(followed['follows_wrong'])}" if followed else ""
            row = [direction, condition, _pct(c["accuracy"]), f"{c['ece']:.3f}", _top_class(c)]
            if "voice_session" in r:
                moved = r["voice_session"][condition]
                row.append(f"{_pct(moved['accuracy'])} / {moved['ece']:.3f} / {_top_class(moved)}")
            rows.append([*row, follows])
    columns = ["direction", "combination", "accuracy", "ECE", "most predicted class (share, %)"]
    if any("voice_session" in r for r in metrics["unseen_corpus"].values()):
        columns.append("with a session: accuracy / ECE / top class")
    return _table([*columns, "pair follows the right / wrong member"], rows)


def person_table(metrics: dict) -> str:
    report = metrics.get("person_adaptation")
    if report is None:
        return "(not measured for this checkpoint: `python -m mculora.recipes.person_adaptation --checkpoint DIR`)"
    names = {"speech": "voice alone (served network)", "face_units": "facial action units alone (paired benchmark)"}
    rows = [
        [
            names[part],
            condition.replace("_", " "),
            _pct(c["accuracy"]),
            _pct(c["macro_f1"]),
            f"{c['ece']:.3f}",
            f"{c['largest_share'] * 100:.0f}",
            _pct(c["mean_person_accuracy"]),
        ]
        for part, r in report.items()
        if part in names
        for condition, c in r["conditions"].items()
    ]
    columns = ["people never seen", "profile", "accuracy", "macro-F1", "ECE", "largest class share, %"]
    table = _table([*columns, "mean per-person accuracy"], rows)
    paired = report.get("paired_calibration")
    if paired is None:
        return table
    without, session = paired["conditions"]["without"], paired["conditions"]["session"]
    calibration = _table(
        ["combination", "accuracy without / with a session", "ECE without / with a session"],
        (
            [c, f"{_pct(without[c]['accuracy'])} / {_pct(session[c]['accuracy'])}",
             f"{without[c]['ece']:.3f} / {session[c]['ece']:.3f}"]
            for c in without
        ),
    )  # fmt: skip
    intro = (
        "Calibration on the unseen speakers: their voices joined with a test text and a test face of the same label "
        f"({paired['pairs']} class-balanced pairs), after the checkpoint's temperatures, without a profile and with a "
        "session of 16 of the speaker's recordings:"
    )
    return f"{table}\n\n{textwrap.fill(intro, WIDTH)}\n\n{calibration}"


def transfer_table(metrics: dict) -> str:
    rows = []
    for name, r in metrics["speech_transfer"].items():
        cells = [
            f"{_pct(c['accuracy'])} / {_pct(c['macro_f1'])} / {c['ece']:.3f} ({c['ece_scaled']:.3f}) / {_top_class(c)}"
            for c in (r["clean"], r["opus_16k"])
        ]
        rows.append([name.split(",")[0], r["train_clips"], *cells])
    columns = ["direction", "training clips", "target, clean: accuracy / macro-F1 / ECE (scaled) / top class"]
    return _table([*columns, "after Opus 16 kbit/s"], rows)


def data_table(metrics: dict) -> str:
    return _table(
        ["modality / split", "items", *EKMAN],
        ([name, d["items"], *(d["per_label"][e] for e in EKMAN)] for name, d in metrics["data"].items()),
    )


def confusion_figure(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(20, 10))
    short = [name[:4] for name in EKMAN]
    for ax, condition in zip(axes.flat, CONDITIONS, strict=False):
        matrix = np.array(metrics["paired_test"][condition]["confusion"], dtype=float)
        normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
        ax.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(f"{condition}: accuracy {_pct(metrics['paired_test'][condition]['accuracy'])} %")
        ax.set_xticks(range(len(EKMAN)), short, rotation=45)
        ax.set_yticks(range(len(EKMAN)), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(len(EKMAN)):
            for j in range(len(EKMAN)):
                ax.text(
                    j,
                    i,
                    f"{normalised[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if normalised[i, j] > 0.5 else "black",
                )
    axes.flat[-1].axis("off")
    name = METHOD_TEXT[metrics["training"].get("method", "mcu-lora")][0]
    fig.suptitle(f"{name}: label-paired test samples, row-normalised confusion per modality combination")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def encoder_table(metrics: dict) -> str:
    return _table(
        ["modality", "encoder", "output dim", "trained parameters"],
        (
            [modality, f"`{spec['name']}`", spec["dim"], f"{spec['trained_parameters']:,}"]
            for modality, spec in metrics["encoders"].items()
        ),
    )


def versus_table(metrics: dict, versus: dict, name: str) -> str:
    """This checkpoint beside the default MCULoRA checkpoint, condition by condition, on the same test pairs."""
    rows = []
    for condition in CONDITIONS:
        peer, mculora = metrics["paired_test"][condition], versus["paired_test"][condition]
        rows.append([condition, *(_pct(r[k]) for k in ("accuracy", "macro_f1") for r in (mculora, peer))])
    columns = ["MCULoRA accuracy", f"{name} accuracy", "MCULoRA macro-F1", f"{name} macro-F1"]
    return _table(["condition", *columns], rows)


def adapter_section(metrics: dict) -> str:
    if "adapters" not in metrics:
        return ""
    return ADAPTER_HEALTH.format(dead=len(metrics["adapters"]["dead_adapters"]), adapter_health=adapter_table(metrics))


def method_section(metrics: dict, versus: dict | None) -> tuple[str, str, str]:
    """The card's title, the intro's first words, and the training paragraph's method sentence(s)."""
    method = metrics["training"].get("method", "mcu-lora")
    name, learns = METHOD_TEXT[method]
    if method == "mcu-lora":
        title, intro = "mculora default checkpoint", "The demo's default model: MCULoRA over text, speech and face"
        training = (
            f"From these samples {learns}. The combination streams have an identity path and the adapters' B "
            f"matrices learn {metrics['training']['optimizer']['lora_plus_ratio']:g} times faster than the rest "
            "(LoRA+), so that every combination adapter trains (the paper's plain chain leaves the deep ones dead; "
            'see "Adapter health"). DPFT (the separability version, measured on validation pairs) adjusts how often '
            "each modality is dropped."
        )
        return title, intro, textwrap.fill(training, WIDTH)
    title = f"mculora {name} checkpoint"
    changed = f"`--method {method}`"
    epochs = metrics["training"]["epochs"]
    if versus is not None and versus["training"]["epochs"] != epochs:
        changed += (
            f" and `--epochs {epochs}` (MCULoRA's run had {versus['training']['epochs']} epochs and selected epoch "
            f"{versus['training']['best_epoch']})"
        )
    intro = (
        f"A peer method beside the default MCULoRA checkpoint, for comparing methods in the demo: {name} over text, "
        "speech and face, trained by the same recipe (data, pairing, encoders, learning rate, selection on validation "
        f"pairs) with only {changed} changed"
    )
    training = textwrap.fill(
        f"From these samples {learns}. Each sample's modality combination is drawn uniformly.", WIDTH
    )
    if versus is not None:
        training += "\n\n**Against MCULoRA** (the default checkpoint), on the same label-paired test samples, in %:\n\n"
        training += versus_table(metrics, versus, name)
    return title, textwrap.fill(intro, WIDTH), training


# The card's template fields filled by a table of the metrics.
TABLES = {
    "summary": summary_table,
    "unimodal": unimodal_table,
    "iemocap4": iemocap4_table,
    "ravdess": ravdess_au_table,
    "calibration": calibration_table,
    "encoders": encoder_table,
    "cross_fitting": cross_fitting_table,
    "stitches": stitch_table,
    "collapse": collapse_table,
    "transfer": transfer_table,
    "disagreement": disagreement_table,
    "unseen_corpus": unseen_corpus_table,
    "person": person_table,
    "data": data_table,
}


def session_training(share: float) -> str:
    """The card's sentence on voices moved by simulated sessions during training (none when the share is 0)."""
    if not share:
        return ""
    return "\n" + textwrap.fill(
        f"In {share:.0%} of the samples the voice is moved by a session of 16 to 48 of its speaker's other training "
        "clips (`mculora.recipes.speaker_sessions`), as a person's profile moves it once they let the page grow it: "
        "the model learns to read voices both as they come and relative to their speaker.",
        WIDTH,
    )


def kept_weights(training: dict) -> str:
    """The card's line on which weights were kept: the best epoch's, or the best running average (SWA)."""
    start, best = int(training["recipe"].get("average_from_epoch", 0)), training["best_epoch"]
    if start and best >= start:
        return (
            f"Kept weights: the average of epochs {start} to {best} of {training['epochs']} (stochastic weight "
            "averaging; of the running averages, the one that scored best on validation)."
        )
    return f"Best validation epoch: {best} of {training['epochs']}."


def write(out: Path, metrics: dict, versus: dict | None = None) -> None:
    """README.md and the confusion figure in ``out``; ``versus``: the default MCULoRA checkpoint's metrics, set
    beside a peer's results."""
    confusion_figure(metrics, out / FIGURE)
    training, timing = metrics["training"], metrics["timing_s"]
    title, intro, method_training = method_section(metrics, versus)
    method = training.get("method", "mcu-lora")
    parameters = f"{training['parameters']['total']:,}"
    if training["parameters"].get("adapters"):
        parameters += f" (adapters {training['parameters']['adapters']:,})"
    text = TEMPLATE.format(
        **{field: table(metrics) for field, table in TABLES.items()},
        title=title,
        intro=intro,
        method_training=method_training,
        name=METHOD_TEXT[method][0],
        command="make checkpoint"
        if method == "mcu-lora"
        else f"python -m mculora.recipes.default --data-root ../shared/data --method {method}",
        adapter_section=adapter_section(metrics),
        face_images=f"{metrics['face_net']['train_images']:,}",
        face_epochs=len(metrics["face_net"]["history"]),
        face_minutes=f"{metrics['face_net']['seconds'] / 60:.1f}",
        face_val=_pct(metrics["face_net"]["history"][-1]["val_accuracy"]),
        face_test=_pct(metrics["face_net"]["test_accuracy"]),
        text_texts=f"{metrics['text_net']['train_texts']:,}",
        text_epochs=len(metrics["text_net"]["history"]),
        text_minutes=f"{metrics['text_net']['seconds'] / 60:.1f}",
        text_val=_pct(metrics["text_net"]["history"][-1]["val_macro_f1"]),
        text_test=_pct(metrics["text_net"]["test_macro_f1"]),
        encoder_minutes=f"{timing['encoder_networks'] / 60:.1f}",
        speech_clips=f"{metrics['speech_net']['train_clips']:,}",
        speech_epochs=len(metrics["speech_net"]["history"]),
        speech_variants=training["recipe"]["speech_augment_variants"],
        folds=metrics["cross_fitting"]["folds"],
        fold_epoch_scale=metrics["cross_fitting"]["fold_epoch_scale"],
        pairs_per_label=training["recipe"]["pairs_per_label"],
        feature_noise=training["recipe"]["feature_noise"],
        session_training=session_training(float(training["recipe"].get("session_share", 0))),
        speech_minutes=f"{metrics['speech_net']['seconds'] / 60:.1f}",
        fold_minutes=f"{sum(r['seconds'] for fold in metrics['folds'] for r in fold.values()) / 60:.1f}",
        crop_minutes=f"{timing['face_crops'] / 60:.1f}",
        speech_val=_pct(metrics["speech_net"]["history"][-1]["val_accuracy"]["ravdess"]),
        speech_test=_pct(metrics["speech_net"]["test_accuracy"]["ravdess"]),
        speech_test_emodb=_pct(metrics["speech_net"]["test_accuracy"]["emodb"]),
        optimizer=training["optimizer"],
        au_clips=metrics["ravdess_au"]["clips"],
        figure=FIGURE,
        kept_weights=kept_weights(training),
        parameters=parameters,
        seconds=f"{timing['total'] / 60:.1f}",
        extraction=f"{timing['extraction'] / 60:.1f}",
        extraction_cumulative=f"{timing['extraction_cumulative'] / 60:.1f}",
        training_minutes=f"{timing['training'] / 60:.1f}",
        machine=timing["machine"],
        recipe=training["recipe"],
        model=training["model"],
        dpft=training["dpft"] if method == "mcu-lora" else "not used (each sample's combination is drawn uniformly)",
    )
    (out / "README.md").write_text(text)
