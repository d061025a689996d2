"""Smoke tests of the webcam and microphone widgets with chromium's fake capture devices fed from files.

Fake media is timing-dependent (gradio's own webcam/mic browser tests are skipped or marked fixme), so each test
retries its whole body up to three times in a fresh browser context; the upload-based test_page.py is the gate.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .pages import EXAMPLES, PREDICTION_TIMEOUT_MS, choose_source, label_value, one_of

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright")
expect, PlaywrightError = sync_api.expect, sync_api.Error

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ATTEMPTS = 3


def write_y4m(image: Path, path: Path, width: int = 320, height: int = 240, fps: int = 10, seconds: int = 2) -> Path:
    """A still Y4M clip of the upper, face-bearing part of ``image``."""
    from PIL import Image

    picture = Image.open(image).convert("RGB")
    crop_width = int(picture.width * 0.8)
    crop_height = crop_width * height // width
    left = (picture.width - crop_width) // 2
    frame = picture.crop((left, 0, left + crop_width, crop_height)).resize((width, height), Image.BICUBIC)
    return write_y4m_frames([np.asarray(frame)] * (fps * seconds), path, fps)


def write_y4m_frames(frames: list[np.ndarray], path: Path, fps: int = 10) -> Path:
    """RGB frames of one size as a Y4M clip (BT.601 studio-range 4:2:0), which chromium's fake camera loops.

    Written with numpy rather than ffmpeg: no ffmpeg needed, and no ``C420mpeg2`` header for chromium to reject."""
    height, width = frames[0].shape[:2]

    def subsample(plane: np.ndarray) -> np.ndarray:  # 4:2:0: one chroma sample per 2x2 block
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            r, g, b = np.moveaxis(frame.astype(np.float64), -1, 0)
            y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
            cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
            cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
            planes = (y, subsample(cb), subsample(cr))
            out.write(b"FRAME\n" + b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes))
    return path


def write_speech_wav(path: Path, seconds: float = 3.0) -> Path:
    """The first seconds of the example speech clip as 16 kHz mono 16-bit PCM."""
    import soundfile as sf

    samples, rate = sf.read(EXAMPLES / "happy_speech.wav", dtype="int16")
    assert rate == 16_000 and samples.ndim == 1
    sf.write(path, samples[: int(seconds * rate)], rate, subtype="PCM_16")
    return path


def with_retries(body: Callable[[int], None], attempts: int = ATTEMPTS) -> None:
    """Run ``body(attempt)``; on an assertion or Playwright error try again, up to ``attempts`` times in all."""
    for attempt in range(1, attempts + 1):
        try:
            body(attempt)
            return
        except (AssertionError, PlaywrightError) as error:
            if attempt == attempts:
                raise
            print(f"attempt {attempt} failed, retrying: {str(error).splitlines()[0]}")


def get_user_media_error(page, constraints: dict) -> str | None:
    """None if this browser grants getUserMedia(constraints), else the error it raised."""
    return page.evaluate(
        """async constraints => {
            try {
                const stream = await navigator.mediaDevices.getUserMedia(constraints);
                stream.getTracks().forEach(track => track.stop());
                return null;
            } catch (error) { return `${error.name}: ${error.message}`; }
        }""",
        constraints,
    )


def test_webcam_capture_then_predict(launch_chromium, demo_pages, demo_labels, artifacts, tmp_path):
    clip = write_y4m(EXAMPLES / "astronaut.jpg", tmp_path / "face.y4m")
    browser = launch_chromium(f"--use-file-for-fake-video-capture={clip}")

    def body(attempt: int) -> None:
        demo_pages.close(f"webcam_attempt{attempt - 1}" if attempt > 1 else None)  # screenshots of a failed try
        page = demo_pages.open(browser)
        refused = get_user_media_error(page, {"video": True})
        choose_source(page, "image", "Capture from camera")
        webcam = page.locator("#image")
        webcam.get_by_text("Click to Access Webcam").click()
        video = webcam.locator('video[data-testid="webcam-video"]')
        expect(video).to_be_attached()
        assert refused is None, f"this chromium refuses getUserMedia headless ({refused})"
        # Playing: enough data for the current frame (readyState >= 2), the clip's size, and not paused.
        page.wait_for_function(
            "v => v.readyState >= 2 && !v.paused && v.videoWidth === 320 && v.videoHeight === 240",
            arg=video.element_handle(),
        )
        webcam.locator('button[aria-label="capture photo"]').click()
        # The still is uploaded and replaces the live view.
        expect(webcam.locator(".image-frame img")).to_have_attribute("src", re.compile(r"/gradio_api/file="))
        page.locator("#predict").click()
        expect(label_value(page)).to_have_text(one_of(demo_labels), timeout=PREDICTION_TIMEOUT_MS)
        # The vision encoder found the face in the captured frame and shows its crop.
        expect(page.locator("#face img")).to_be_visible(timeout=PREDICTION_TIMEOUT_MS)
        expect(page.locator("#notices")).not_to_contain_text(re.compile(r"vision\s+not used"))
        page.screenshot(path=str(artifacts / "webcam_smoke.png"))

    with_retries(body)


def test_microphone_records_a_clip(launch_chromium, demo_pages, artifacts, tmp_path):
    import soundfile as sf

    speech = write_speech_wav(tmp_path / "speech.wav")
    browser = launch_chromium(f"--use-file-for-fake-audio-capture={speech}")

    def body(attempt: int) -> None:
        demo_pages.close(f"microphone_attempt{attempt - 1}" if attempt > 1 else None)
        page = demo_pages.open(browser)
        refused = get_user_media_error(page, {"audio": True})
        assert refused is None, f"this chromium refuses getUserMedia headless ({refused})"
        choose_source(page, "audio", "Record audio")
        audio = page.locator("#audio")
        audio.locator("button.record-button").click()
        stop = audio.locator("button.stop-button")
        expect(stop).to_be_visible()  # recording
        page.wait_for_timeout(2_000)
        stop.click()
        # The recording is uploaded: a player with a download link to the server's copy replaces the recorder.
        expect(audio.locator('[data-testid^="waveform-controls"]')).to_be_visible()
        download = audio.locator('a[data-testid="download-link"]')
        expect(download).to_have_attribute("href", re.compile(r"/gradio_api/file=.*\.wav$"))
        response = page.request.get(download.get_attribute("href"))
        assert response.ok, response.status
        samples, rate = sf.read(io.BytesIO(response.body()), dtype="float32")
        seconds = len(samples) / rate
        assert 1.0 <= seconds <= 10.0, f"recorded {seconds:.2f} s"
        assert float(np.abs(samples).max()) > 0.01, "the recording is silent"
        page.screenshot(path=str(artifacts / "microphone_smoke.png"))

    with_retries(body)
