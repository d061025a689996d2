"""Page helpers shared by the browser tests (selectors of Gradio 6's DOM)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright").expect

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
PREDICTION_TIMEOUT_MS = 60_000  # the first prediction of the session loads the encoders


def choose_source(page, elem_id: str, source: str) -> None:
    """Pick an input source ("Upload file", "Capture from camera", "Record audio") of an Image or Audio component.

    Gradio 6 puts the source buttons under ``[data-testid=source-select]`` with the source as aria-label; the first
    listed source (webcam, microphone here) starts selected, and the selected one has the class ``selected``."""
    button = page.locator(f'#{elem_id} [data-testid="source-select"] button[aria-label="{source}"]')
    if "selected" not in (button.get_attribute("class") or ""):
        button.click()
    expect(button).to_have_class(re.compile(r"\bselected\b"))


def one_of(names: list[str]) -> re.Pattern:
    return re.compile("^(" + "|".join(map(re.escape, names)) + ")$")


def label_value(page):
    return page.locator('#label [data-testid="label-output-value"]')
