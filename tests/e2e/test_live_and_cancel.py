"""The Live webcam tab and the Clip tab's Cancel in Chromium: a streamed prediction appears and changes with the face
in front of the (fake) camera; a long clip cancelled while it is read stops, and the server answers the next clip at
once."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .pages import EXAMPLES, PREDICTION_TIMEOUT_MS, choose_source
from .test_media_devices import with_retries, write_y4m_frames

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FER = {"happiness": "happy", "surprise": "surprise"}


def framed(face: np.ndarray, width: int = 320, height: int = 240) -> np.ndarray:
    """``face`` scaled to 70 % of the frame's height, centred on grey, as a camera would show a face."""
    side = int(0.7 * height)
    scaled = np.asarray(Image.fromarray(face).resize((side, side), Image.BICUBIC))
    canvas = np.full((height, width, 3), 128, np.uint8)
    top, left = (height - side) // 2, (width - side) // 2
    canvas[top : top + side, left : left + side] = scaled
    return canvas


def confident_face(predictor, shared_data: Path, label: str) -> np.ndarray:
    """The first FER-2013 PublicTest face of ``label`` that vision alone reads as ``label`` with p >= 0.6, framed."""
    faces = pd.read_csv(shared_data / "fer2013" / "labels.csv")
    faces = faces[(faces.label == FER[label]) & (faces.fer2013_usage == "PublicTest")]
    for path in faces.path.head(80):
        frame = framed(np.asarray(Image.open(shared_data / "fer2013" / path).convert("RGB")))
        if predictor.predict(image=frame).probabilities[label] >= 0.6:
            return frame
    pytest.fail(f"no PublicTest face of {label} is read as {label} with p >= 0.6")


def test_the_live_tab_streams_predictions_that_follow_the_face(
    launch_chromium, demo_pages, predictor, shared_data, artifacts, tmp_path
):
    faces = [confident_face(predictor, shared_data, label) for label in FER]
    fps = 10
    camera = write_y4m_frames([faces[0]] * (3 * fps) + [faces[1]] * (3 * fps), tmp_path / "faces.y4m", fps)
    browser = launch_chromium(f"--use-file-for-fake-video-capture={camera}")

    def body(attempt: int) -> None:
        demo_pages.close(f"live_attempt{attempt - 1}" if attempt > 1 else None)
        page = demo_pages.open(browser)
        page.get_by_role("tab", name="Live webcam").click()
        live = page.locator("#live")
        live.get_by_text("Click to Access Webcam").click()
        live.locator('button[aria-label="capture photo"]').click()  # starts the stream
        shown = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(shown) < 2:
            text = page.locator("#label").inner_text()
            shown |= {label for label in FER if re.search(rf"^{label}$", text, re.MULTILINE)}
            page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "live_tab.png"))
        assert shown == set(FER), f"the streamed label showed {shown or 'nothing'}"

    with_retries(body)


def test_cancel_stops_a_long_clip_and_the_next_clip_is_answered_at_once(
    demo_pages, browser, demo_url, tmp_path, caplog
):
    from gradio_client import handle_file
    from served import api_client

    from mculora.preprocess.audio import prepare_audio
    from mculora.serving.clip_writer import compose_clip

    face = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    speech = prepare_audio(str(EXAMPLES / "happy_speech.wav")).samples
    long_clip = compose_clip(tmp_path / "long.mp4", [(face, speech, 4.0)] * 30, width=640, height=360)
    short_clip = compose_clip(tmp_path / "short.mp4", [(face, speech, 3.0)], width=320, height=240)
    client = api_client(demo_url)
    caplog.set_level(logging.INFO, logger="mculora.serving.friendly_errors")

    def body(attempt: int) -> None:
        demo_pages.close(f"cancel_attempt{attempt - 1}" if attempt > 1 else None)
        page = demo_pages.open(browser)
        page.get_by_role("tab", name="Clip").click()
        choose_source(page, "clip", "Upload file")
        page.locator("#clip input[type=file]").set_input_files(str(long_clip))
        expect(page.locator("#clip video").first).to_have_attribute("src", re.compile(r"/gradio_api/file="))
        page.locator("#score-clip").click()
        expect(page.get_by_text(re.compile(r"reading the clip")).first).to_be_visible(timeout=PREDICTION_TIMEOUT_MS)
        caplog.clear()
        page.locator("#cancel-clip").click()
        started = time.perf_counter()
        # The clips' queue holds one clip at a time: this one is answered only once the cancelled one has stopped.
        answer = client.predict(
            handle_file(str(short_clip)), None, "", True, True, True, None, api_name="/predict_clip"
        )
        waited = time.perf_counter() - started
        assert isinstance(answer, dict) and answer["windows"], answer
        assert waited < 6.0, f"the next clip waited {waited:.1f} s"
        # The served page runs in this process: its log says the cancelled clip's work stopped.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "clip_view: cancelled" not in caplog.text:
            time.sleep(0.2)
        assert "clip_view: cancelled, the work stopped" in caplog.text
        expect(page.locator("#clip-summary")).not_to_contain_text("windows of")

    with_retries(body)
