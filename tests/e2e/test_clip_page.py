"""The Clip tab in Chromium: record a clip with the (fake) webcam and microphone, score it, see the timeline and the
strip, and download the per-window CSV."""

from __future__ import annotations

import csv
import io
import re

import pytest

from .pages import EXAMPLES, PREDICTION_TIMEOUT_MS
from .test_media_devices import with_retries, write_speech_wav, write_y4m

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
expect = sync_api.expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_record_a_clip_score_it_and_download_the_csv(launch_chromium, demo_pages, demo_labels, artifacts, tmp_path):
    face = write_y4m(EXAMPLES / "astronaut.jpg", tmp_path / "face.y4m", seconds=4)
    speech = write_speech_wav(tmp_path / "speech.wav", seconds=4.0)
    browser = launch_chromium(
        f"--use-file-for-fake-video-capture={face}", f"--use-file-for-fake-audio-capture={speech}"
    )

    def body(attempt: int) -> None:
        demo_pages.close(f"clip_attempt{attempt - 1}" if attempt > 1 else None)
        page = demo_pages.open(browser)
        page.get_by_role("tab", name="Clip").click()
        clip = page.locator("#clip")
        clip.get_by_text("Click to Access Webcam").click()
        clip.locator('button[aria-label="start recording"]').click()
        page.wait_for_timeout(3_500)
        clip.locator("button.capture-button").click()  # the same button stops the recording
        # The recording (WebM with its soundtrack) is uploaded and plays back from the server.
        expect(clip.locator("video").first).to_have_attribute("src", re.compile(r"/gradio_api/file="))
        page.locator("#score-clip").click()
        summary = page.locator("#clip-summary")
        expect(summary).to_contain_text("windows of 2 s every 1 s", timeout=PREDICTION_TIMEOUT_MS)
        # The fake camera shows a face and the fake microphone plays speech: both reach the windows.
        text = summary.inner_text()
        assert "a face in 0" not in text and "speech in 0" not in text, text
        expect(page.locator("#clip-timeline .js-plotly-plot")).to_be_visible()
        expect(page.locator("#clip-strip .js-plotly-plot")).to_be_visible()
        link = page.locator("#clip-csv a").first
        expect(link).to_have_attribute("href", re.compile(r"clip\.csv$"))
        response = page.request.get(link.get_attribute("href"))
        assert response.ok, response.status
        rows = list(csv.DictReader(io.StringIO(response.text())))
        assert rows and {row["label"] for row in rows} <= set(demo_labels)
        assert {row["combination"] for row in rows} >= {"av", "a", "v"}
        page.screenshot(path=str(artifacts / "clip_tab.png"), full_page=True)

    with_retries(body)
