"""Fixtures for the browser tests: one served demo per session and Debian's chromium driven by Playwright.

The demo serves the `demo_checkpoint` of tests/conftest.py. Screenshots land in ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `import app` finds the demo's app.py

# Debian's chromium (not Playwright's headless shell, which rejects getUserMedia), offline, with fake media devices.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so the page fixture can screenshot a failing test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def demo_labels(demo_checkpoint: Path) -> list[str]:
    import json

    return list(json.loads((demo_checkpoint / "config.json").read_text())["label_names"])


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install chromium); browser tests need it"
        if os.environ.get("CI"):  # on CI a missing browser is a broken runner, not a reason to pass
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def demo_url(demo_checkpoint: Path, chromium_path: str) -> Iterator[str]:
    """The demo, served on a free local port for the whole session (models load once), with the other methods'
    checkpoints beside the demo's, as `python app.py` serves them."""
    from served import served_demo  # tests/served.py

    from mculora.checkpoint import sibling_checkpoints
    from mculora.serving.predictor import Predictor

    compared = sibling_checkpoints(demo_checkpoint)
    predictor = Predictor.from_pretrained(demo_checkpoint, device="cpu", compare_with=compared)
    with served_demo(predictor, demo_checkpoint, compared=compared) as (demo, _):
        yield demo.local_url


@pytest.fixture(scope="session")
def demo_methods(demo_checkpoint: Path) -> list[str]:
    """The methods the served page offers, the default first."""
    from mculora.checkpoint import read_checkpoint_config, sibling_checkpoints

    return [read_checkpoint_config(path).method for path in (demo_checkpoint, *sibling_checkpoints(demo_checkpoint))]


@pytest.fixture(scope="session")
def playwright_driver(chromium_path: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def _launch(driver, executable: str, extra_args: tuple[str, ...] = ()):
    return driver.chromium.launch(executable_path=executable, headless=True, args=[*CHROMIUM_ARGS, *extra_args])


@pytest.fixture(scope="session")
def browser(playwright_driver, chromium_path: str):
    """The session's headless Debian chromium (default fake camera and microphone)."""
    browser = _launch(playwright_driver, chromium_path)
    yield browser
    browser.close()


@pytest.fixture
def launch_chromium(playwright_driver, chromium_path: str) -> Iterator[Callable[..., object]]:
    """``launch_chromium(*extra_args)``: a chromium with extra flags (e.g. a fake capture file), closed after
    the test."""
    browsers = []

    def launch(*extra_args: str):
        browsers.append(_launch(playwright_driver, chromium_path, extra_args))
        return browsers[-1]

    yield launch
    for browser in browsers:
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class DemoPage:
    """Opens the demo in fresh browser contexts (one per call) and closes them after the test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.contexts: list = []
        self.js_errors: list[str] = []

    def open(self, browser):
        context = browser.new_context(viewport=VIEWPORT, permissions=["camera", "microphone"])
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: self.js_errors.append(str(error)))
        page.goto(self.url)
        # The app has mounted once its textbox shows; "networkidle" may never come while the queue is connected.
        page.locator("#text textarea").wait_for(state="visible")
        return page

    def close(self, failed_name: str | None = None) -> None:
        """Close every context opened so far; first screenshot their pages if the test failed."""
        from playwright.sync_api import Error as PlaywrightError

        for i, context in enumerate(self.contexts):
            try:
                if failed_name is not None:
                    ARTIFACTS.mkdir(exist_ok=True)
                    for j, page in enumerate(context.pages):
                        page.screenshot(path=str(ARTIFACTS / f"failed_{failed_name}_{i}_{j}.png"), full_page=True)
                context.close()
            except PlaywrightError:
                pass  # its browser is already gone
        self.contexts.clear()


@pytest.fixture
def demo_pages(demo_url: str, request: pytest.FixtureRequest) -> Iterator[DemoPage]:
    """``demo_pages.open(browser)``: the loaded demo in a fresh context; screenshots of every page if the test fails."""
    pages = DemoPage(demo_url)
    yield pages
    report = getattr(request.node, "rep_call", None)
    pages.close(request.node.name if report is not None and report.failed else None)


@pytest.fixture
def page(browser, demo_pages: DemoPage):
    """The demo in a fresh context of the session's browser."""
    return demo_pages.open(browser)
