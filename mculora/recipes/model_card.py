"""The model card (README.md) and confusion-matrix figure of a checkpoint of `mculora.recipes.default`, written from
its metrics.json: the default MCULoRA checkpoint, or a peer method's trained by the same recipe."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from mculora.evaluate import CONDITIONS
from mculora.recipes.sources import EKMAN

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


def summary_table(metrics: dict) -> str:
    """Per-combination test table (label-paired test samples): accuracy, macro-F1 and per-class recall."""
    head = "| condition | accuracy | macro-F1 | " + " | ".join(f"recall {name}" for name in EKMAN) + " |"
    rows = [head, "|---" * (3 + len(EKMAN)) + "|"]
    for condition in CONDITIONS:
        r = metrics["paired_test"][condition]
        recalls = " | ".join(_pct(r["recall"].get(name, float("nan"))) for name in EKMAN)
        rows.append(f"| {condition} | {_pct(r['accuracy'])} | {_pct(r['macro_f1'])} | {recalls} |")
    return "\n".join(rows)


def unimodal_table(metrics: dict) -> str:
    rows = ["| modality / test set | items | accuracy | macro-F1 | UA |", "|---|---|---|---|---|"]
    for name, r in metrics["unimodal_test"].items():
        rows.append(f"| {name} | {r['n']} | {_pct(r['accuracy'])} | {_pct(r['macro_f1'])} | {_pct(r['ua'])} |")
    return "\n".join(rows)


def iemocap4_table(metrics: dict) -> str:
    rows = ["| condition | accuracy | UA |", "|---|---|---|"]
    for condition in CONDITIONS:
        r = metrics["iemocap4_subset"][condition]
        rows.append(f"| {condition} | {_pct(r['accuracy'])} | {_pct(r['ua'])} |")
    return "\n".join(rows)


def ravdess_au_table(metrics: dict) -> str:
    au = metrics["ravdess_au"]
    rows = ["| condition | accuracy | macro-F1 |", "|---|---|---|"]
    for condition, r in au["conditions"].items():
        rows.append(
            f"| {condition} | {_pct(r['accuracy'])} ± {_pct(r['accuracy_std'])} "
            f"| {_pct(r['macro_f1'])} ± {_pct(r['macro_f1_std'])} |"
        )
    return "\n".join(rows)


def adapter_table(metrics: dict) -> str:
    """Adapter health: the smallest routed / shared gradient ratio per layer kind, then the decoupling figures."""
    health = metrics["adapters"]
    kinds = {"in_proj": "input projections", "layers": "MLP layers", "fusion": "fusion", "head": "head"}
    rows = ["| layers | smallest gradient ratio |", "|---|---|"]
    rows += [f"| {name} | {health['gradient_ratio_min'][kind]:.1e} |" for kind, name in kinds.items()]
    rows += ["", "| combination | separability | distinctness |", "|---|---|---|"]
    for combination, figures in health["decoupling"].items():
        rows.append(f"| {combination} | {figures['separability']:.3f} | {figures['distinctness']:.2f} |")
    return "\n".join(rows)


def calibration_table(metrics: dict) -> str:
    rows = [
        "| condition | temperature | ECE before | ECE after | NLL before | NLL after |",
        "|---|---|---|---|---|---|",
    ]
    for condition in CONDITIONS:
        r = metrics["calibration"][condition]
        rows.append(
            f"| {condition} | {r['temperature']:.2f} | {r['ece_before']:.3f} | {r['ece_after']:.3f} "
            f"| {r['nll_before']:.3f} | {r['nll_after']:.3f} |"
        )
    return "\n".join(rows)


def cross_fitting_table(metrics: dict) -> str:
    fitting = metrics["cross_fitting"]
    rows = ["| what | training items (out of fold) | validation items |", "|---|---|---|"]
    for modality, r in fitting["networks"].items():
        rows.append(f"| {modality} network alone | {_pct(r['out_of_fold_accuracy'])} | {_pct(r['val_accuracy'])} |")
    fusion = fitting["fusion"]
    rows.append(
        f"| the fusion, all three modalities (pairs) | {_pct(fusion['train_pairs_accuracy'])} "
        f"| {_pct(fusion['val_pairs_accuracy'])} |"
    )
    return "\n".join(rows)


def collapse_table(metrics: dict) -> str:
    rows = [
        "| test set / condition | balanced items | most predicted class | its share | collapsed |",
        "|---|---|---|---|---|",
    ]
    for name, r in metrics["collapse"].items():
        verdict = "**yes**" if r["collapsed"] else "no"
        rows.append(f"| {name} | {r['balanced_items']} | {r['largest']} | {_pct(r['largest_share'])} | {verdict} |")
    return "\n".join(rows)


def disagreement_table(metrics: dict) -> str:
    rows = ["| pair | test pairs where one member alone is right | pair follows the right one | the wrong one |"]
    rows.append("|---|---|---|---|")
    for pair, r in metrics["disagreement"].items():
        rows.append(f"| {pair} | {r['samples']} | {_pct(r['follows_right'])} | {_pct(r['follows_wrong'])} |")
    return "\n".join(rows)


def transfer_table(metrics: dict) -> str:
    rows = [
        "| direction | training clips | target, clean: accuracy / macro-F1 / ECE / top class | after Opus 16 kbit/s |",
        "|---|---|---|---|",
    ]
    for name, r in metrics["speech_transfer"].items():
        cells = [
            f"{_pct(c['accuracy'])} / {_pct(c['macro_f1'])} / {c['ece']:.3f} / "
            f"{c['largest']} {_pct(c['largest_share'])}" + (" (**collapsed**)" if c["collapsed"] else "")
            for c in (r["clean"], r["opus_16k"])
        ]
        rows.append(f"| {name.split(',')[0]} | {r['train_clips']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def data_table(metrics: dict) -> str:
    rows = ["| modality / split | items | " + " | ".join(EKMAN) + " |", "|---" * (2 + len(EKMAN)) + "|"]
    for name, d in metrics["data"].items():
        rows.append(f"| {name} | {d['items']} | " + " | ".join(str(d["per_label"][e]) for e in EKMAN) + " |")
    return "\n".join(rows)


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
    rows = ["| modality | encoder | output dim | trained parameters |", "|---|---|---|---|"]
    for modality, spec in metrics["encoders"].items():
        rows.append(f"| {modality} | `{spec['name']}` | {spec['dim']} | {spec['trained_parameters']:,} |")
    return "\n".join(rows)


def versus_table(metrics: dict, versus: dict, name: str) -> str:
    """This checkpoint beside the default MCULoRA checkpoint, condition by condition, on the same test pairs."""
    rows = [
        f"| condition | MCULoRA accuracy | {name} accuracy | MCULoRA macro-F1 | {name} macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for condition in CONDITIONS:
        peer, mculora = metrics["paired_test"][condition], versus["paired_test"][condition]
        rows.append(
            f"| {condition} | {_pct(mculora['accuracy'])} | {_pct(peer['accuracy'])} "
            f"| {_pct(mculora['macro_f1'])} | {_pct(peer['macro_f1'])} |"
        )
    return "\n".join(rows)


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
        title=title,
        intro=intro,
        method_training=method_training,
        name=METHOD_TEXT[method][0],
        command="make checkpoint"
        if method == "mcu-lora"
        else f"python -m mculora.recipes.default --data-root ../shared/data --method {method}",
        adapter_section=adapter_section(metrics),
        summary=summary_table(metrics),
        unimodal=unimodal_table(metrics),
        iemocap4=iemocap4_table(metrics),
        ravdess=ravdess_au_table(metrics),
        calibration=calibration_table(metrics),
        encoders=encoder_table(metrics),
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
        cross_fitting=cross_fitting_table(metrics),
        collapse=collapse_table(metrics),
        transfer=transfer_table(metrics),
        disagreement=disagreement_table(metrics),
        speech_minutes=f"{metrics['speech_net']['seconds'] / 60:.1f}",
        speech_val=_pct(metrics["speech_net"]["history"][-1]["val_accuracy"]["ravdess"]),
        speech_test=_pct(metrics["speech_net"]["test_accuracy"]["ravdess"]),
        speech_test_emodb=_pct(metrics["speech_net"]["test_accuracy"]["emodb"]),
        optimizer=training["optimizer"],
        au_clips=metrics["ravdess_au"]["clips"],
        data=data_table(metrics),
        figure=FIGURE,
        best_epoch=training["best_epoch"],
        epochs=training["epochs"],
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


TEMPLATE = """\
# {title} (Ekman-7, offline encoders)

{intro}.
It was trained on real, public emotion corpora with the **offline** encoders: all-MiniLM-L6-v2 with its top layers
fine-tuned here for emotion; a torchaudio acoustic descriptor joined to a speech CNN trained here on RAVDESS +
EmoDB; and for faces a mediapipe face-mesh geometry descriptor joined to a facial-expression CNN trained here on
FER-2013.
Labels: anger, disgust, fear, happiness, neutral, sadness, surprise.
Reproduce with `{command}`;
every number below comes from `metrics.json`, which that command writes.

**Not for decisions about people.** It scores how an expression, a voice or a sentence *looks like* the acted or
annotated examples it learned from; it does not read anyone's feelings.

## Data and terms

| modality | corpora | licence / terms |
|---|---|---|
| text | GoEmotions (Reddit; single-label rows) | Apache-2.0 |
| text | MELD (Friends dialogue) train/dev | research use (repository GPL-3.0) |
| speech | RAVDESS speech (actors 01-22, acted English) | CC BY-NC-SA 4.0 |
| speech | EmoDB (acted German) | free for research |
| face | FER-2013 (48×48 grayscale web images) | no explicit licence: research use only |
| paired benchmark | RAVDESS audio + OpenFace action units | CC BY-NC-SA 4.0 (derivative) |

Because of these terms, use the checkpoint for research and demonstration, **non-commercially**. The weights contain
no data, but they were learned from it.

**Label mapping.**
- joy → happiness.
- RAVDESS *calm* → neutral: a calm delivery of the same neutral sentences.
- EmoDB *boredom* is dropped: it has no Ekman counterpart.
- GoEmotions multi-label rows are dropped.

**Splits** keep speakers, actors and sources apart; no test item is used for training or selection.

| corpus | train | validation | test |
|---|---|---|---|
| GoEmotions | train | dev | test |
| MELD | train, 90 % of dialogues | train, 10 % of dialogues | dev |
| RAVDESS | actors 01-16 | actors 17-18 | actors 19-22 |
| EmoDB | speakers 03, 09, 10, 13, 14 | speaker 11 | speakers 08, 12 |
| FER-2013 | Training, 90 % | Training, 10 % | PublicTest |

FER-2013 has no subject ids, so its exact pixel duplicates are kept out of test. Its blank images are dropped.
Items with a usable feature:

{data}

## Encoders

{encoders}

The face network (`face_net.safetensors`, loaded by the vision encoder from this folder) is a VGG-style CNN over
48×48 grayscale faces, trained by `mculora.recipes.face` on the crops the run-time path cuts from {face_images}
FER-2013 training images (the face mesh, then the network's framing: what it sees in the demo), with what a webcam
does to a face on top (exposure, contrast, gamma, a face a few dozen pixels wide, noise, JPEG), for {face_epochs}
epochs ({face_minutes} min): validation accuracy {face_val} %, **PublicTest accuracy {face_test} %** on its own
(the path crops of the test faces the mesh finds, averaged with their mirror images). The vision encoder feeds
MCULoRA the geometry descriptor, the network's pooled features and its logits.

The text network (`text_net.safetensors`, loaded by the text encoder from this folder) is the packaged
all-MiniLM-L6-v2 with its top two transformer layers and a 7-way head fine-tuned by `mculora.recipes.text` on
{text_texts} GoEmotions + MELD training texts for {text_epochs} epochs ({text_minutes} min): validation macro-F1
{text_val} %, **test macro-F1 {text_test} %** on its own (GoEmotions test + MELD dev, trained with 1/√frequency class
weights). The text encoder feeds the model the fine-tuned sentence embedding and the head's logits.

The speech network (`speech_net.safetensors`, loaded by the audio encoder from this folder) is a small CNN over
64-band log-mel spectrograms, trained by `mculora.recipes.speech` on {speech_clips} RAVDESS + EmoDB training clips,
each also as {speech_variants} copies under browser and phone conditions (`mculora.recipes.speech_augment`: gain and
clipping, reverberation, noise at 0-20 dB SNR, band limits, low-bitrate Opus/AAC/MP3, silence), for {speech_epochs}
epochs ({speech_minutes} min): RAVDESS validation accuracy {speech_val} %, **test accuracy
{speech_test} % on RAVDESS actors 19-22** and {speech_test_emodb} % on EmoDB speakers 08/12, on its own. The audio
encoder feeds the model the acoustic descriptor, the network's pooled features and its logits.

## How it was trained: synthetic pairing

**The pairing is synthetic.** The corpora were not recorded together. Each training sample joins one text, one
speech clip and one face that share a label, drawn afresh every batch with class-balanced labels.
{method_training}

The model therefore learned how the modalities agree *on a label*, not how one real person's face, voice and words go
together. The genuinely paired benchmark below is the real check of that.

**Training settings.**
- Model: {model}
- DPFT: {dpft}
- Optimiser: {optimizer}
- Recipe: {recipe}
- Best validation epoch: {best_epoch} of {epochs}.
- Parameters: {parameters}.
- Time, on {machine}: {seconds} min for this run of the recipe, of which {encoder_minutes} min went on the three
  encoder networks (a network trained by an earlier run with the same settings is reused; their training took:
  face {face_minutes} min, text {text_minutes} min, speech {speech_minutes} min), {extraction} min on feature
  extraction and {training_minutes} min on training {name}. Building the feature cache from scratch took
  {extraction_cumulative} min in all, over the runs that built it.
- **Cross-fitted features** (`mculora.recipes.cross_fitting`): the training items are split into {folds} folds by
  speaker, actor, dialogue, comment or image; each fold's items get their features from encoder networks trained
  without them ({fold_epoch_scale:.0%} of the served networks' epochs), so the model learns from features as
  imperfect as a new person's. The served networks learned from all training items; validation and test items are
  unseen by every network. Accuracy on training items (out of fold) beside validation items:

{cross_fitting}

{adapter_section}## Test results per modality combination

**Label-paired test samples:** the same number of samples for each label, built from the test splits. The table
gives accuracy, macro-F1 and per-class recall, in %.

{summary}

![confusion matrices]({figure})

**Each modality alone on its own natural test set** (real class distribution):

{unimodal}

**Calibration.** The probabilities the demo shows are temperature-scaled: each combination's logits are divided by a
temperature fitted on the validation pairs (minimum negative log-likelihood), so that the confidence shown comes
closer to how often the model is right. The predicted class does not change. Expected calibration error (ECE, 15
equal-width confidence bins: the average gap between confidence and accuracy) and negative log-likelihood on the
paired test samples, before and after:

{calibration}

## Generalisation

**Collapse check.** A model that gives one class to most inputs of a kind it never saw is useless there, whatever its
accuracy elsewhere. On a class-balanced draw of each modality's test items, and on the (balanced) test pairs under
each combination, no class may take more than 35 % of the predictions:

{collapse}

**Speech on a corpus it never heard.** The speech network trained (same recipe, augmented copies included) on one
acted corpus and tested on every clip of the other, on the six classes both have (chance 16.7 %), clean and after an
Opus 16 kbit/s round trip (a WebRTC microphone's codec), by `mculora.recipes.speech_transfer`:

{transfer}

Faces have no second corpus here (FER-2013 only), so the face network's unseen-data figures are its PublicTest ones.

**When two modalities disagree.** On the test pairs where one modality alone is right and the other wrong, how often
the pair's prediction takes the right member's label, and how often the wrong member's (the rest: a third label):

{disagreement}

**The IEMOCAP-4 label subset** (anger, happiness, neutral, sadness; prediction restricted to these four), on the same
paired test samples:

{iemocap4}

## Genuinely paired benchmark: RAVDESS speech + facial action units

RAVDESS's speech clips paired with the action units (17 intensities + 18 presences, clip-level OpenFace statistics)
of the *same* performances. Text is absent: RAVDESS's two fixed sentences carry no emotion.

There are {au_clips} clips. The folds are speaker-independent, with actors grouped by (actor − 1) mod 5: each fold
tests on unseen actors and selects on another group. The checkpoint is its own small one (hidden 64, depth 2), in
`ravdess_au/`, because its visual input is not the demo's face descriptor. Results are mean ± std over the 5 folds:

{ravdess}

## Limits
- The speech is acted (RAVDESS, EmoDB): exaggerated compared with everyday speech, in two fixed English sentences
  and German. It is not conversational.
- The text is Reddit comments and TV-sitcom lines. Sarcasm, context and other languages are out of scope.
- The faces are 48×48 grayscale web images (FER-2013, with label noise: human accuracy is about 65 %). The face
  network sees grayscale only: no colour.
- The pairing is synthetic (see above). Fused scores assume the modalities express one emotion.
- Scores reflect resemblance to annotated or acted examples. They say nothing about what a person feels. Do not use
  them for hiring, policing, health, education or any decision about people.
"""

ADAPTER_HEALTH = """\
## Adapter health

MCLA only works if every combination's adapters learn. Measured on the validation pairs with
`python -m mculora.inspect` (its `adapter_health`): for each combination, one backward pass of the loss on inputs
with only that combination's modalities; each layer's routed combination adapter's gradient norm divided by the
shared adapter's in the same layer. Below 1e-3 an adapter counts as dead. **Dead adapters: {dead}.**

*Separability* is DPFT's divergence between the shared and the combination representation of the same input;
*distinctness* is how much one input's combination representation differs between this combination and the others
that share a modality with it (relative distance; 0 would mean the combinations compute the same thing).

{adapter_health}

"""
