"""The demo page in a real browser: uploads, a modality switched off, Predict, the ablation, and the error path.

This is the browser gate: it uses uploaded files only (no fake camera or microphone), so it is deterministic.
"""

from __future__ import annotations

import itertools
import re

import pytest

from mculora.modalities import combination_name

from .pages import EXAMPLES, PREDICTION_TIMEOUT_MS, choose_source, label_value, one_of

expect = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright").expect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXT = "We won! I can't believe it, this is the best day ever!"


def upload(page, elem_id: str, path) -> None:
    choose_source(page, elem_id, "Upload file")
    # The file input is hidden (display: none) but set_input_files does not need it visible.
    page.locator(f'#{elem_id} input[type="file"]').set_input_files(str(path))


def expect_label_from(page, labels: list[str]) -> str:
    value = label_value(page)
    expect(value).to_have_text(one_of(labels), timeout=PREDICTION_TIMEOUT_MS)
    return value.inner_text()


def expect_plotly(page, elem_id: str) -> None:
    """A plotly figure was drawn in the gr.Plot: plotly's root div, its visible svg, and at least one trace."""
    figure = page.locator(f"#{elem_id} .js-plotly-plot")
    expect(figure).to_have_count(1, timeout=PREDICTION_TIMEOUT_MS)
    expect(figure.locator("svg.main-svg").first).to_be_visible()
    assert figure.evaluate("div => (div.data || []).length") > 0, f"#{elem_id}: the plotly figure has no traces"


def watch_busy(page, elem_id: str) -> None:
    """Count, from now on, each time the output's status tracker leaves its idle (hidden) state."""
    page.evaluate(
        """id => {
            const tracker = document.querySelector(`#${id} [data-testid="status-tracker"]`);
            window.__busy = window.__busy || {};
            window.__busy[id] = 0;
            new MutationObserver(() => {
                if (!tracker.classList.contains("hide")) window.__busy[id] += 1;
            }).observe(tracker, {attributes: true, attributeFilter: ["class"]});
        }""",
        elem_id,
    )


def wait_idle_after_busy(page, elem_id: str) -> None:
    """Wait until the watched output has been busy at least once and has then settled; fail if it shows an error
    (Gradio leaves a failed output's status tracker visible with the text "Error")."""
    tracker = f'#{elem_id} [data-testid="status-tracker"]'
    page.wait_for_function(
        """([id, tracker]) => {
            const element = document.querySelector(tracker);
            return window.__busy[id] > 0 && (element.classList.contains("hide") || /Error/.test(element.textContent));
        }""",
        arg=[elem_id, tracker],
        timeout=PREDICTION_TIMEOUT_MS,
    )
    assert "Error" not in page.locator(tracker).text_content(), f"#{elem_id} shows an error"


def expect_no_traceback(page) -> None:
    body = page.locator("body")
    expect(body).not_to_contain_text("Traceback")
    expect(body).not_to_contain_text(re.compile(r'File ".*", line \d+'))


def test_upload_drop_text_predict_and_ablate(page, demo_pages, demo_labels, demo_methods, artifacts):
    page.locator("#text textarea").fill(TEXT)
    upload(page, "image", EXAMPLES / "astronaut.jpg")
    expect(page.locator("#image .image-frame img")).to_have_attribute("src", re.compile(r"astronaut\.jpg$"))
    upload(page, "audio", EXAMPLES / "happy_speech.wav")
    # An uploaded clip replaces the recorder with a waveform player whose download link is the server's copy.
    expect(page.locator('#audio a[data-testid="download-link"]')).to_have_attribute(
        "href", re.compile(r"/gradio_api/file=.*happy_speech\.wav$")
    )

    # Switching "use text" off is itself a prediction trigger; let it finish so the Predict click is tested alone.
    watch_busy(page, "label")
    use_text = page.locator("#use-text input[type=checkbox]")
    use_text.uncheck()
    expect(use_text).not_to_be_checked()
    wait_idle_after_busy(page, "label")
    expect_label_from(page, demo_labels)

    watch_busy(page, "label")
    page.locator("#predict").click()
    wait_idle_after_busy(page, "label")

    expect_label_from(page, demo_labels)
    expect_plotly(page, "distribution")
    expect_plotly(page, "contributions")
    expect(page.locator("#probability-note")).to_contain_text("calibrated")  # what the percentages mean
    notices = page.locator("#notices")
    expect(notices).to_contain_text("text", timeout=PREDICTION_TIMEOUT_MS)
    expect(notices).to_contain_text("dropped by the user")
    expect(notices).to_contain_text(re.compile(r"text\s+not used:\s*dropped by the user"))
    expect(notices).not_to_contain_text(re.compile(r"(audio|vision)\s+not used"))  # both were usable
    expect(page.locator("#face img")).to_be_visible()  # the face crop the vision encoder saw
    expect_no_traceback(page)
    page.screenshot(path=str(artifacts / "page_after_prediction.png"), full_page=True)

    page.locator("#ablate").click()
    # Text dropped, image and audio usable: the non-empty subsets of {audio, vision}, largest first, for each method
    # side by side (the page's default when it serves several).
    usable = ["audio", "vision"]
    expected = [combination_name(s) for size in (2, 1) for s in itertools.combinations(usable, size)]
    assert sorted(expected) == sorted(["av", "a", "v"])
    expected_rows = expected * len(demo_methods)
    expect_plotly(page, "heatmap")
    # One heatmap per method, side by side: plotly names their y axes' ticks ytick, y2tick, ...
    axes = ["y"] + [f"y{i}" for i in range(2, len(demo_methods) + 1)]
    ticks = page.locator(", ".join(f"#heatmap .{axis}tick text" for axis in axes))
    expect(ticks).to_have_count(len(expected_rows), timeout=PREDICTION_TIMEOUT_MS)
    tick_combinations = [text.split("→")[0].strip() for text in ticks.all_text_contents()]
    assert sorted(tick_combinations) == sorted(expected_rows), tick_combinations
    # Gradio 6's Dataframe is a virtualised grid: rows are div[role=row].virtual-row, cells [data-testid=cell-R-C]
    # (its <tbody> is a hidden one-row sizing table), and the grid's aria-rowcount counts the header too.
    expect(page.locator('#table [role="grid"]')).to_have_attribute("aria-rowcount", str(len(expected_rows) + 1))
    expect(page.locator('#table [role="row"].virtual-row')).to_have_count(len(expected_rows))
    column = 1 if len(demo_methods) > 1 else 0  # several methods: the first column names the method
    cells = [page.locator(f'#table [data-testid="cell-{i}-{column}"]') for i in range(len(expected_rows))]
    first_cells = [cell.inner_text().strip() for cell in cells]
    assert sorted(first_cells) == sorted(expected_rows), first_cells
    # The two export files are offered for download (gr.File shows stem and extension in separate elements).
    expect(page.locator("#csv")).to_contain_text(re.compile(r"ablation\s*\.csv"))
    expect(page.locator("#json")).to_contain_text(re.compile(r"ablation\s*\.json"))
    expect_no_traceback(page)
    page.screenshot(path=str(artifacts / "page_after_ablation.png"), full_page=True)
    assert not demo_pages.js_errors, demo_pages.js_errors


def test_nothing_given_shows_error_then_server_still_answers(page, demo_pages, demo_labels):
    page.locator("#predict").click()
    toast = page.locator('[data-testid="toast-body"].error')
    expect(toast).to_be_visible(timeout=PREDICTION_TIMEOUT_MS)
    expect(toast).to_contain_text("nothing usable")
    expect_no_traceback(page)

    page.locator('[data-testid="toast-close"]').first.click()
    page.locator("#text textarea").fill(TEXT)
    page.locator("#predict").click()
    expect_label_from(page, demo_labels)
    expect_plotly(page, "distribution")
    notices = page.locator("#notices")
    # Neither a voice nor a face was given.
    expect(notices).to_contain_text(re.compile(r"audio\s+not used:\s*not given"))
    expect(notices).to_contain_text(re.compile(r"vision\s+not used:\s*not given"))
    expect(page.locator('[data-testid="toast-body"].error')).to_have_count(0)
    expect_no_traceback(page)
    assert not demo_pages.js_errors, demo_pages.js_errors


def test_every_example_loads(page, demo_pages, demo_labels):
    """Each bundled example (lazily cached) fills the outputs with a prediction rather than an error."""
    rows = page.locator("tr.tr-body")  # gr.Examples renders a table of rows, cells [data-testid=dataset-cell-R-C]
    count = len(list(EXAMPLES.glob("*.json")))
    expect(rows).to_have_count(count)
    for i in range(count):
        watch_busy(page, "label")
        rows.nth(i).click()
        wait_idle_after_busy(page, "label")
        expect_label_from(page, demo_labels)
        expect_plotly(page, "distribution")
    expect_no_traceback(page)
    assert not demo_pages.js_errors, demo_pages.js_errors


def test_the_method_selector_reruns_the_same_input(page, demo_pages, demo_labels, demo_methods, artifacts):
    if len(demo_methods) < 2:
        pytest.skip("the served checkpoint has no other method's checkpoint beside it")
    page.locator("#text textarea").fill(TEXT)
    watch_busy(page, "label")
    page.locator("#predict").click()
    wait_idle_after_busy(page, "label")
    expect(page.locator("#contributions")).to_contain_text("combination adapter")
    # Choosing another method is itself a prediction trigger: the same text, through the other network.
    watch_busy(page, "label")
    page.locator("#method").get_by_label(demo_methods[1], exact=True).check()
    wait_idle_after_busy(page, "label")
    expect_label_from(page, demo_labels)
    expect(page.locator("#contributions")).to_contain_text(f"{demo_methods[1]} has no adapters")
    expect_no_traceback(page)
    page.screenshot(path=str(artifacts / "page_other_method.png"), full_page=True)
    assert not demo_pages.js_errors, demo_pages.js_errors
