"""mculora demo: emotion from a face, a voice and a sentence, with any of them left out.

    mculora serve [--checkpoint checkpoints/default | owner/name@revision] [--compare-with checkpoints/mplmm ...]
                  [--host 127.0.0.1] [--port 7860] [--share]

(``python app.py`` in a checkout or a Space runs the same.) The page only wires components to
`mculora.serving.demo.DemoCallbacks`; the model, encoders and plots live in the rest of `mculora/`. It needs the
``demo`` extra (``pip install "mculora[demo]"``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# ZeroGPU's package must be imported before anything touches CUDA. It exists only on Spaces.
try:
    import spaces
except ImportError:
    spaces = None


# Offline by default: no usage pings from Gradio or from huggingface_hub.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from mculora import hub_download
from mculora.checkpoint import CheckpointError, sibling_checkpoints  # noqa: E402
from mculora.encoders import EncoderMismatch  # noqa: E402
from mculora.modalities import COMBINATIONS  # noqa: E402
from mculora.serving import plots, server  # noqa: E402
from mculora.serving.allocator import keep_freed_memory  # noqa: E402
from mculora.serving.clip_result import ALL  # noqa: E402
from mculora.serving.demo import (  # noqa: E402
    ClipJob,
    Conversation,
    DemoCallbacks,
    model_card_markdown,
    probability_note,
    undecoded_uploads,
)
from mculora.serving.predictor import Predictor  # noqa: E402
from mculora.serving.torch_thread import TorchThread  # noqa: E402
from mculora.serving.transcribe import TranscriptionError, model_directory  # noqa: E402

# A checkout or a Space folder holds the package beside checkpoints/ and assets/; an installed package does not, and
# then the checkpoint is given (--checkpoint, MCULORA_CHECKPOINT) or read from ./checkpoints/default.
_PROJECT = Path(__file__).resolve().parents[2]
ROOT = _PROJECT if (_PROJECT / "checkpoints" / "default").is_dir() else Path.cwd()
DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "default"
EXAMPLES = _PROJECT / "assets" / "examples"  # the examples row is left out where they are not
MODEL = "model"  # one concurrency group for every event that runs the model
# Clips score and annotate one at a time in a group of their own: a second visitor's clip waits with its place in the
# queue shown, while predictions go on (a clip hands the model over in short pieces, `mculora.serving.clip`).
CLIPS = {"concurrency_id": "clips", "concurrency_limit": 1}

INTRO = """\
# mculora: emotion recognition that copes with missing modalities
Give a face, a voice and/or a sentence. Switch any of them off to see how one MCULoRA model routes the rest to the
adapters of that **combination**. Scores say how much an input resembles the acted and annotated examples the
model learned from, not what anyone feels.
"""

CLIP_NOTE = """\
A clip is scored in windows of 2 s every second, each under every combination of the modalities it has; the summary
pools the windows by how certain each one is.
"""
NO_TRANSCRIPTION = """**Speech is not transcribed here** (this server runs offline): for the text modality give a timed
transcript, or type a sentence that applies to the whole clip."""
ENROL_NOTE = """\
**Adapt to me.** Record 5 to 20 seconds of yourself, face in view, reading calmly, for example:
*"The train leaves at nine. I usually take the bus to work. Today the weather is mild and grey."*
(or upload a clip, or a face photo and a voice recording). Your resting face becomes the reference your expressions
are read against; your voice is read relative to yours once enough of your own inputs are added (the switch below).
The profile stays in this browser session: nothing about you is written on the server.
"""
TRANSCRIPTION = """Without a transcript or a typed sentence, the soundtrack is transcribed by **{model}** (a machine
transcript, which can be wrong) for the text modality."""


def build_demo(
    predictor: Predictor,
    checkpoint: Path = DEFAULT_CHECKPOINT,
    queue_size: int = server.QUEUE_SIZE,
    compared: Sequence[Path] = (),
    transcribe: str | None = None,
) -> gr.Blocks:
    """The page over ``predictor``; ``compared``: the checkpoints of its other methods, for their model cards;
    ``transcribe``: the opt-in speech-to-text model for clips (None: clips are never transcribed)."""
    callbacks = DemoCallbacks(predictor, transcribe)
    several = len(predictor.methods) > 1
    gpu = server.gpu_task(spaces)  # @spaces.GPU(duration=...) on ZeroGPU, the identity elsewhere
    clip_gpu = server.gpu_task(spaces, server.CLIP_GPU_SECONDS)
    with gr.Blocks(title="mculora", delete_cache=server.CACHE_CLEANUP) as demo:
        gr.Markdown(INTRO)
        conversation = gr.State(Conversation())
        profile = gr.State(None)  # the person's profile: this browser session only
        with gr.Row():
            with gr.Column(scale=5):
                with gr.Tabs():
                    with gr.Tab("Snapshot"):
                        image = face_image(["webcam", "upload"], "Face (webcam or image)", "image")
                    # Every frame of a stream would be a billed GPU call on ZeroGPU: snapshots only there.
                    with gr.Tab("Live webcam", visible=not server.on_zero_gpu()):
                        live = gr.Image(
                            sources=["webcam"], type="numpy", streaming=True, label="Live face", elem_id="live"
                        )
                    with gr.Tab("Video"):
                        video = gr.Video(sources=["upload"], label="Short video (used when no image is given)")
                    with gr.Tab("Clip", elem_id="clip-tab"):
                        # A recording scored window by window; format=None keeps the upload as it is (no ffmpeg).
                        clip = gr.Video(
                            sources=["webcam", "upload"],
                            include_audio=True,
                            label="Clip: video with its soundtrack (record or upload)",
                            elem_id="clip",
                        )
                        transcript = gr.File(
                            label="Timed transcript (.srt or .vtt, optional)",
                            file_types=[".srt", ".vtt"],
                            elem_id="transcript",
                        )
                        gr.Markdown(
                            CLIP_NOTE + (TRANSCRIPTION.format(model=transcribe) if transcribe else NO_TRANSCRIPTION),
                            elem_id="clip-note",
                        )
                        with gr.Row():
                            score_clip = gr.Button("Score clip", variant="primary", elem_id="score-clip")
                            cancel_clip = gr.Button("Cancel", elem_id="cancel-clip")
                    with gr.Tab("Adapt to me", elem_id="enrol-tab"):
                        gr.Markdown(ENROL_NOTE)
                        enrol_clip = gr.Video(
                            sources=["webcam", "upload"],
                            include_audio=True,
                            label="Calm recording: face and voice",
                            elem_id="enrol-clip",
                        )
                        with gr.Row():
                            enrol_image = face_image(["upload", "webcam"], "or a face photo", "enrol-image")
                            enrol_audio = gr.Audio(
                                sources=["microphone", "upload"],
                                type="filepath",
                                label="and your voice",
                                elem_id="enrol-audio",
                            )
                        with gr.Row():
                            enrol = gr.Button("Adapt to me", variant="primary", elem_id="enrol")
                            forget = gr.Button("Forget me", elem_id="forget")
                        with gr.Row():
                            enrol_face = gr.Image(
                                label="Face captured", interactive=False, height=160, elem_id="enrol-face"
                            )
                            enrol_voice = gr.Textbox(label="Voice captured", interactive=False, elem_id="enrol-voice")
                audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speech", elem_id="audio")
                text = gr.Textbox(label="Text", placeholder="What was said…", lines=2, elem_id="text")
                with gr.Row():
                    use_audio = gr.Checkbox(True, label="use audio", elem_id="use-audio")
                    use_text = gr.Checkbox(True, label="use text", elem_id="use-text")
                    use_vision = gr.Checkbox(True, label="use vision", elem_id="use-vision")
                with gr.Row():
                    conversation_on = gr.Checkbox(False, label="conversation mode", elem_id="conversation")
                    reset = gr.Button("Reset conversation", size="sm")
                with gr.Row():
                    use_profile = gr.Checkbox(False, label="use my profile", elem_id="use-profile")
                    grow_profile = gr.Checkbox(False, label="let my inputs grow it", elem_id="grow-profile")
                profile_status = gr.Markdown(callbacks.person.status(None), elem_id="profile-status")
                # Other methods' checkpoints over the same encoders: the same input through another method.
                method = gr.Radio(
                    predictor.methods, value=predictor.methods[0], label="Method", visible=several, elem_id="method"
                )
                with gr.Row():
                    go = gr.Button("Predict", variant="primary", elem_id="predict")
                    ablate = gr.Button("Run all combinations", elem_id="ablate")
            with gr.Column(scale=6):
                with gr.Row():
                    label = gr.Label(num_top_classes=3, label="Emotion", elem_id="label")
                    label_without = gr.Label(num_top_classes=3, label="Without your profile", elem_id="label-without")
                notices = gr.Markdown(elem_id="notices")
                distribution = gr.Plot(label="Emotion distribution", elem_id="distribution")
                gr.Markdown(probability_note(predictor), elem_id="probability-note")
                contributions = gr.Plot(label="Adapter contributions", elem_id="contributions")
                face = gr.Image(label="What the vision encoder saw", interactive=False, height=224, elem_id="face")
                timeline = gr.Plot(label="Conversation timeline", elem_id="timeline")
        with gr.Accordion("Ablation: every combination at once", open=True):
            side_by_side = gr.Checkbox(
                several, label="all methods side by side", visible=several, elem_id="side-by-side"
            )
            heatmap = gr.Plot(label="Combination × emotion", elem_id="heatmap")
            table = gr.Dataframe(
                value=plots.ablation_table([], predictor.labels),
                label="Probabilities per combination",
                interactive=False,
                elem_id="table",
            )
            with gr.Row():
                csv_file = gr.File(label="CSV", elem_id="csv")
                json_file = gr.File(label="JSON", elem_id="json")
        with gr.Accordion("Clip: emotion over time", open=True):
            clip_result, clip_job = gr.State(None), gr.State(ClipJob())
            clip_summary = gr.Markdown(elem_id="clip-summary")
            clip_combination = gr.Dropdown(
                [ALL, *COMBINATIONS], value=ALL, label="Combination shown over time", elem_id="clip-combination"
            )
            clip_timeline = gr.Plot(label="Emotion over time", elem_id="clip-timeline")
            clip_strip = gr.Plot(label="Combination × time", elem_id="clip-strip")
            clip_table = gr.Dataframe(label="Windows", interactive=False, elem_id="clip-table")
            with gr.Row():
                clip_csv = gr.File(label="CSV (per window)", elem_id="clip-csv")
                clip_json = gr.File(label="JSON (per window)", elem_id="clip-json")
                clip_video = gr.File(label="Annotated MP4", elem_id="clip-video")
            annotate = gr.Button("Make the annotated MP4", elem_id="annotate")
        with gr.Accordion("Raw result (JSON)", open=False):
            raw = gr.JSON(elem_id="raw")
        with gr.Accordion("Model card", open=False):
            gr.Markdown(model_card_markdown(checkpoint))
        for other in compared:
            with gr.Accordion(f"Model card: {other.name}", open=False):
                gr.Markdown(model_card_markdown(other))

        toggles = [use_audio, use_text, use_vision]
        personal = [profile, use_profile]
        view_inputs = [image, audio, text, video, *toggles, conversation_on, conversation, method, *personal]
        view_outputs = [label, distribution, contributions, face, notices, raw, timeline, conversation]
        triggers = [go.click, text.submit, use_audio.change, use_text.change, use_vision.change, method.change]
        gr.on(
            [*triggers, use_profile.input],
            gpu(callbacks.predict_view),
            [*view_inputs, grow_profile],
            [*view_outputs, label_without, profile_status],
            api_visibility="private",
            concurrency_id=MODEL,
        )
        enrolled = [profile, enrol_face, enrol_voice, profile_status, use_profile]
        enrol.click(
            gpu(callbacks.person.enrol_view),
            [enrol_clip, enrol_image, enrol_audio],
            enrolled,
            api_visibility="private",
            concurrency_id=MODEL,
        )
        forget.click(callbacks.person.forget_profile, None, enrolled, api_visibility="private")
        live.stream(
            gpu(callbacks.live_view),
            [live, audio, text, *toggles, method, *personal],
            [label, distribution, face, label_without],
            stream_every=0.5,
            time_limit=120,
            concurrency_id=MODEL,
            api_visibility="private",
        )
        ablate.click(
            gpu(callbacks.ablate_view),
            [image, audio, text, video, *toggles, method, side_by_side, *personal],
            [heatmap, table, csv_file, json_file],
            api_visibility="private",
            concurrency_id=MODEL,
        )
        reset.click(callbacks.reset_conversation, None, [conversation, timeline], api_visibility="private")
        clip_event = score_clip.click(
            clip_gpu(callbacks.clip_view),
            [clip, transcript, text, *toggles, method, side_by_side, clip_job, *personal],
            [clip_summary, clip_timeline, clip_strip, clip_table, clip_csv, clip_json, clip_result],
            api_visibility="private",
            **CLIPS,
        )
        cancel_clip.click(callbacks.cancel_clip, clip_job, None, cancels=[clip_event], api_visibility="private")
        clip_combination.change(
            callbacks.clip_timeline_view,
            [clip_result, clip_combination, method],
            clip_timeline,
            api_visibility="private",
        )
        annotate.click(
            callbacks.annotated_video_view,
            [clip, clip_result, clip_combination],
            clip_video,
            api_visibility="private",
            **CLIPS,
        )

        # The public API: JSON endpoints on hidden triggers, so clients get data rather than page updates. Plain files
        # for the API's clips, so a client passes handle_file("talk.mp4") as it is; an enrolment clip makes a profile
        # for that call only.
        clip_file, transcript_file, enrolment_file = (gr.File(visible=False) for _ in range(3))
        api_inputs = [image, audio, text, *toggles, video, method]
        predict_api, ablate_api = gr.Button(visible=False), gr.Button(visible=False)
        predict_api.click(
            gpu(callbacks.predict_api), [*api_inputs, enrolment_file], raw, api_name="predict", concurrency_id=MODEL
        )
        ablate_api.click(gpu(callbacks.ablate_api), api_inputs, raw, api_name="ablate", concurrency_id=MODEL)
        clip_api = gr.Button(visible=False)
        clip_api.click(
            clip_gpu(callbacks.clip_api),
            [clip_file, transcript_file, text, *toggles, method, enrolment_file],
            raw,
            api_name="predict_clip",
            **CLIPS,
        )

        examples = sorted(EXAMPLES.glob("*.json"))
        if examples:
            gr.Examples(
                examples=[example_row(path) for path in examples],
                inputs=[image, audio, text],
                outputs=[label, distribution, contributions, notices, raw],
                fn=gpu(callbacks.example_view),
                cache_examples=True,
                cache_mode="lazy",
                api_visibility="private",
            )
    # A full queue answers at once with "Queue is full, please try again" rather than keeping a caller waiting.
    demo.queue(default_concurrency_limit=server.CONCURRENCY, max_size=queue_size)
    return demo


def face_image(sources: list[str], label: str, elem_id: str) -> gr.Image:
    """A face input that hands files, not arrays, to the library: it decodes them and turns a broken upload into a
    notice."""
    return undecoded_uploads(gr.Image(sources=sources, type="filepath", format="png", label=label, elem_id=elem_id))


def example_row(path: Path) -> list:
    """An example is a JSON file naming its image, audio and text (paths relative to the examples folder)."""
    spec = json.loads(path.read_text())
    return [
        str(EXAMPLES / spec["image"]) if spec.get("image") else None,
        str(EXAMPLES / spec["audio"]) if spec.get("audio") else None,
        spec.get("text", ""),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mculora serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        default=os.environ.get("MCULORA_CHECKPOINT", str(DEFAULT_CHECKPOINT)),
        help="a checkpoint directory, or owner/name[@revision] on the Hugging Face Hub (downloaded once, cached)",
    )
    parser.add_argument(
        "--compare-with",
        nargs="*",
        default=None,
        help="checkpoints of other methods over the same encoders, selectable on the page (default: those beside a "
        "local --checkpoint, e.g. checkpoints/mplmm; none for a Hub checkpoint)",
    )
    # Local runs bind to this machine only; Hugging Face Spaces sets GRADIO_SERVER_NAME=0.0.0.0 itself.
    host = os.environ.get("MCULORA_HOST") or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = os.environ.get("MCULORA_PORT") or os.environ.get("GRADIO_SERVER_PORT") or "7860"
    parser.add_argument("--host", default=host)
    parser.add_argument("--port", type=int, default=int(port))
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument(
        "--transcribe",
        metavar="MODEL",
        default=os.environ.get("MCULORA_TRANSCRIBE") or None,
        help="opt-in: transcribe clips without a transcript with this Whisper model (owner/name[@revision] on the "
        "Hugging Face Hub, fetched at startup; or a local directory). Default: never transcribe",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # A served process predicts again and again: keep the few MiB each prediction frees (glibc), a process-wide
    # setting that is the server's to make, not the library's (`mculora.serving.allocator`).
    keep_freed_memory()
    # Requests arrive on the server's worker threads; every Predictor loads and predicts on one thread of its own,
    # so torch keeps one OpenMP team whose workers stay awake (`mculora.serving.torch_thread`).
    torch_thread = TorchThread()
    try:
        checkpoint = hub_download.resolve(args.checkpoint)
        if args.compare_with is not None:
            compared = [hub_download.resolve(other) for other in args.compare_with]
        else:  # the other methods beside a local checkpoint; a Hub checkpoint has no neighbours
            compared = sibling_checkpoints(checkpoint) if Path(args.checkpoint).is_dir() else []
        predictor = Predictor.from_pretrained(checkpoint, compare_with=compared, torch_thread=torch_thread)
        if args.transcribe:
            model_directory(args.transcribe)  # fetched now: an unreachable Hub stops the start with the reason
    except (CheckpointError, EncoderMismatch, TranscriptionError) as error:
        sys.exit(f"error: {error}")
    for line in server.startup_report(predictor.device, checkpoint, predictor.config):
        logging.getLogger("mculora").info(line)
    if compared:
        logging.getLogger("mculora").info("methods on the page: %s", ", ".join(predictor.methods))
    demo = build_demo(predictor, checkpoint, compared=compared, transcribe=args.transcribe)
    launch(demo, args.host, args.port, share=args.share)


def launch(demo: gr.Blocks, host: str, port: int, **options):
    """Serve the page with the server's limits (`mculora.serving.server`); ``options`` go to ``Blocks.launch``."""
    # Server-side rendering would add a Node.js process and gives this single interactive page nothing (no content
    # to index, every output appears after a call), so the page is rendered in the browser, as in the tests.
    return demo.launch(
        server_name=host,
        server_port=port,
        theme=gr.themes.Soft(),
        ssr_mode=False,
        max_file_size=server.MAX_UPLOAD,
        # The callbacks turn every failure into a `gr.Error` with a plain message already; what is left are Gradio's
        # own checks of an API call's values (e.g. a number where a file belongs), whose message says what is wrong.
        show_error=True,
        **options,
    )


if __name__ == "__main__":
    main()
