"""*Adapt to me* in a real Chromium with its fake camera and microphone fed from files: capture a face, record the
voice, enrol, then Predict shows the prediction with the profile beside the one without.

Fake media is timing-dependent, so the body is retried in a fresh browser context as in test_media_devices.py."""

from __future__ import annotations

import re

import pytest

from .pages import EXAMPLES, PREDICTION_TIMEOUT_MS, choose_source, label_value, one_of
from .test_media_devices import with_retries, write_speech_wav, write_y4m
from .test_page import upload

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_enrol_with_camera_and_microphone_then_predict_shows_both(
    launch_chromium, demo_pages, demo_labels, artifacts, tmp_path
):
    face = write_y4m(EXAMPLES / "astronaut.jpg", tmp_path / "face.y4m")
    voice = write_speech_wav(tmp_path / "voice.wav", seconds=4.0)
    browser = launch_chromium(f"--use-file-for-fake-video-capture={face}", f"--use-file-for-fake-audio-capture={voice}")

    def body(attempt: int) -> None:
        demo_pages.close(f"enrol_attempt{attempt - 1}" if attempt > 1 else None)
        page = demo_pages.open(browser)
        page.get_by_role("tab", name="Adapt to me").click()
        # The face from the camera.
        choose_source(page, "enrol-image", "Capture from camera")
        camera = page.locator("#enrol-image")
        camera.get_by_text("Click to Access Webcam").click()
        video = camera.locator('video[data-testid="webcam-video"]')
        page.wait_for_function("v => v.readyState >= 2 && !v.paused && v.videoWidth > 0", arg=video.element_handle())
        camera.locator('button[aria-label="capture photo"]').click()
        expect(camera.locator(".image-frame img")).to_have_attribute("src", re.compile(r"/gradio_api/file="))
        # The voice from the microphone: a few seconds, as a person reading a sentence or two.
        choose_source(page, "enrol-audio", "Record audio")
        microphone = page.locator("#enrol-audio")
        microphone.locator("button.record-button").click()
        stop = microphone.locator("button.stop-button")
        expect(stop).to_be_visible()
        page.wait_for_timeout(5_000)
        stop.click()
        expect(microphone.locator('[data-testid^="waveform-controls"]')).to_be_visible()
        # Uploaded to the server (its copy's link), so that Enrol sends it rather than nothing.
        download = microphone.locator('a[data-testid="download-link"]')
        expect(download).to_have_attribute("href", re.compile(r"/gradio_api/file=.*\.wav$"))

        page.locator("#enrol").click()
        expect(page.locator("#enrol-face img")).to_be_visible(timeout=PREDICTION_TIMEOUT_MS)
        expect(page.locator("#profile-status")).to_contain_text("Profile", timeout=PREDICTION_TIMEOUT_MS)
        expect(page.locator("#enrol-voice textarea")).to_have_value(re.compile(r"s of speech"))
        expect(page.locator("#use-profile input")).to_be_checked()
        # Switching the profile on by enrolling predicts nothing: there is no input yet, so no error either.
        page.wait_for_timeout(1_500)  # time for a (wrongly) triggered prediction to answer
        expect(page.locator('[data-testid="toast-body"].error')).to_have_count(0)

        page.get_by_role("tab", name="Snapshot").click()
        upload(page, "image", EXAMPLES / "astronaut.jpg")
        page.locator("#predict").click()
        expect(label_value(page)).to_have_text(one_of(demo_labels), timeout=PREDICTION_TIMEOUT_MS)
        without = page.locator('#label-without [data-testid="label-output-value"]')
        expect(without).to_have_text(one_of(demo_labels), timeout=PREDICTION_TIMEOUT_MS)
        page.screenshot(path=str(artifacts / "enrol_then_predict.png"), full_page=True)
        assert not demo_pages.js_errors, demo_pages.js_errors

        # Switched off, the profile is not used: only the model's own reading is shown.
        page.locator("#use-profile input").uncheck()
        expect(without).to_have_count(0, timeout=PREDICTION_TIMEOUT_MS)

    with_retries(body)
