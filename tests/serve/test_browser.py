"""The demo page of ``seqlab serve`` in a real browser: Debian's headless Chromium, driven by Playwright.

Tiny trained pipelines of the five served tasks (``tiny_model_dirs``, tests/serve/conftest.py)
are served by the real app under uvicorn on a free localhost port; the test loads ``/``, runs
every panel as a user would (types text, chooses a wav file, records from Chromium's fake
microphone, ticks "show attention", sets the temperature) and checks what the page RENDERS
against what ``pipe.predict`` returns for the same input, plus the error box on a 4xx. A
screenshot per panel goes to ``test-output/screenshots/<task>.png``.

It skips when /usr/bin/chromium or the playwright package is missing, except under CI (the
``CI`` environment variable set), where that is a failure: CI installs Debian's chromium
(.ci/run). Playwright's own browser downloads are never used (no ``playwright install``).
"""
from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-output" / "screenshots"
WAV = REPO / "corpora" / "speech" / "wavs" / "utt0004.wav"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
    # A microphone for the record button: Chromium's fake device, playing a clip of the corpus.
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-audio-capture={WAV}",
]
TIMEOUT_MS = 20_000


def _missing_piece() -> str | None:
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian: apt-get install --no-install-recommends chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing_piece()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser test may not skip: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, served):
    """The demo page, loaded; fails the test on a script error or a request that leaves the server."""
    base, _ = served
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A 4xx is logged by the browser itself; the tests that expect one check the error box.
    expected_4xx = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
    page.on("console", lambda msg: errors.append(msg.text)
            if msg.type == "error" and not expected_4xx.match(msg.text) else None)
    # blob: and data: URLs are the page's own (the audio player of a recording).
    page.on("request", lambda req: outside.append(req.url)
            if not req.url.startswith((base + "/", "blob:", "data:")) else None)
    page.goto("/")
    page.wait_for_selector("body[data-state=ready]")
    yield page
    context.close()
    assert not errors, f"the page logged errors: {errors}"
    assert not outside, f"the page fetched from outside the server: {outside}"


def panel(page, task: str):
    section = page.locator(f'section.panel[data-task="{task}"]')
    assert section.count() == 1, f"one {task} panel expected, found {section.count()}"
    return section


def run(section, state: str = "done") -> None:
    """Click Run and wait until the panel leaves the busy state; it must end in ``state``."""
    section.locator("button[data-role=run]").click()
    finish(section, state)


def finish(section, state: str = "done") -> None:
    from playwright.sync_api import expect

    expect(section).to_have_attribute("data-state", re.compile("^(done|error)$"), timeout=TIMEOUT_MS)
    got = section.get_attribute("data-state")
    if got != state:
        error = section.locator("[data-role=error]").inner_text()
        pytest.fail(f"{section.get_attribute('data-task')} panel ended in {got!r}, expected {state!r} ({error!r})")


def screenshot(section, task: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    section.scroll_into_view_if_needed()
    section.page.mouse.move(0, 0)  # no hover effects in the picture
    section.screenshot(path=str(SCREENSHOTS / f"{task}.png"))


def post(base: str, model: str, body: dict[str, Any]) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/api/models/{model}/predict", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def predict(pipe, value: Any, **options: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipe.predict([value], **options)[0]


# -- the panels ---------------------------------------------------------------------------------
def test_one_panel_per_served_model(page, served):
    base, pipes = served
    sections = page.locator("section.panel")
    found = {(s.get_attribute("data-task"), s.get_attribute("data-model")) for s in sections.all()}
    assert found == {(pipe.task, name) for name, pipe in pipes.items()}
    for info in json.loads(urllib.request.urlopen(f"{base}/api/models", timeout=10).read())["models"]:
        # The dev metrics saved with the model are shown under its name.
        first = next(iter(info["metrics"]), None)
        if first is not None:
            assert first in panel(page, info["task"]).locator(".model-info").inner_text()
    for section in sections.all():
        assert section.get_attribute("data-state") == "idle"
        assert section.locator("button[data-role=run]").is_visible()
        # Every input has a visible label.
        for field in section.locator("textarea, input, select").all():
            field_id = field.get_attribute("id")
            assert field_id and section.locator(f'label[for="{field_id}"]').count() == 1, field_id
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: the panels stack, nothing overflows
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(SCREENSHOTS / "page-narrow.png"), full_page=True)


def test_sentiment_label_and_score_bars(page, served):
    _, pipes = served
    text = "The food was wonderful and the staff were friendly."
    section = panel(page, "sentiment")
    section.locator("textarea[data-role=input]").fill(text)
    run(section)
    expected = predict(pipes["sentiment"], text)
    output = section.locator("[data-role=output]")
    assert output.locator("[data-role=label]").inner_text() == expected["label"]
    bars = output.locator("[data-role=score-bar]")
    shown = {bar.get_attribute("data-label"): bar.evaluate("b => b.style.width") for bar in bars.all()}
    assert set(shown) == set(expected["scores"])
    for label, width in shown.items():
        assert width.endswith("%") and float(width[:-1]) == pytest.approx(100 * expected["scores"][label], abs=0.051)
    screenshot(section, "sentiment")


def test_ner_entities_marked_inline(page, served):
    base, pipes = served
    text = "London 's mayor , Diego Garcia , met Angela Merkel in Paris ."
    section = panel(page, "ner")
    section.locator("textarea[data-role=input]").fill(text)
    run(section)
    expected = predict(pipes["ner"], text)
    assert expected["spans"], "the tiny NER model finds no entity in the test sentence: the check would be empty"
    marks = section.locator("[data-role=output] mark.entity")
    assert [(m.inner_text(), m.get_attribute("data-type")) for m in marks.all()] == \
           [(s["text"], s["type"]) for s in expected["spans"]]
    for mark, span in zip(marks.all(), expected["spans"]):
        assert mark.get_attribute("title") == f"{span['type']} {span['score']:.2f}"
        # The type and score are shown beside the text (CSS generated content), not only on hover.
        label = mark.evaluate("m => getComputedStyle(m, '::after').content")
        assert span["type"] in label and f"{span['score']:.2f}" in label
    # The whole sentence is shown, the entities inline in it.
    assert section.locator("[data-role=entities]").inner_text() == expected["text"]
    info = json.loads(urllib.request.urlopen(f"{base}/api/models/ner", timeout=10).read())
    assert section.locator(".legend li").all_inner_texts() == info["labels"]
    screenshot(section, "ner")


def predict_response(page):
    """Context manager: the page's next predict response (to compare the error box with)."""
    return page.expect_response(lambda r: "/predict" in r.url and r.request.method == "POST")


@pytest.mark.parametrize("task", ["sentiment", "ner", "translation", "lm"])
def test_blank_text_shows_the_api_error(page, served, task):
    base, _ = served
    status, body = post(base, task, {"input": "   ", "options": {}})
    assert 400 <= status < 500 and body["error"]
    section = panel(page, task)
    section.locator("textarea[data-role=input]").fill("   ")
    with predict_response(page) as answer:
        run(section, state="error")
    assert 400 <= answer.value.status < 500
    error = section.locator("[data-role=error]")
    assert error.is_visible() and error.inner_text() == answer.value.json()["error"] == body["error"]
    assert section.locator("[data-role=output]").inner_text() == ""
    # The next good request clears the error box.
    section.locator("textarea[data-role=input]").fill("the film")
    run(section)
    assert not error.is_visible()


def test_speech_upload_that_is_not_audio_shows_the_api_error(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"not audio at all " * 50)
    section = panel(page, "speech")
    section.locator("input[type=file][data-role=file]").set_input_files(str(bad))
    with predict_response(page) as answer:
        run(section, state="error")
    assert answer.value.status == 400
    error = section.locator("[data-role=error]")
    assert error.is_visible() and error.inner_text() == answer.value.json()["error"]
    screenshot(section, "speech-error")


def test_translation_with_attention_heatmap(page, served):
    _, pipes = served
    text = "A man is riding a bicycle."
    section = panel(page, "translation")
    section.locator("textarea[data-role=input]").fill(text)
    section.locator("input[data-role=attention]").check()
    run(section)
    expected = predict(pipes["translation"], text, return_attention=True)
    assert section.locator("[data-role=translation]").inner_text() == expected["text"] == predict(pipes["translation"], text)
    heatmap = section.locator("[data-role=heatmap]")
    rows = heatmap.locator("tbody tr")
    assert rows.count() == len(expected["target_pieces"]) == len(expected["attention"])
    assert heatmap.locator("thead th").all_inner_texts() == expected["source_pieces"]
    assert heatmap.locator("tbody th").all_inner_texts() == expected["target_pieces"]
    for row, weights in zip(rows.all(), expected["attention"]):
        assert [float(x) for x in row.locator("td").all_inner_texts()] == pytest.approx(weights, abs=0.0051)
    assert all(row.locator("td").count() == len(expected["source_pieces"]) for row in rows.all())
    screenshot(section, "translation")
    # Unticking reruns the same text without attention: the heatmap goes, the translation stays.
    section.locator("input[data-role=attention]").uncheck()
    finish(section)
    assert section.locator("[data-role=heatmap]").count() == 0
    assert section.locator("[data-role=translation]").inner_text() == expected["text"]
    # The beam size starts at the model's default and is sent with the request.
    beam = section.locator("input[data-role=beam_size]")
    assert int(beam.input_value()) == pipes["translation"].model.parse_options({})["beam_size"]
    beam.fill("1")
    run(section)
    assert section.locator("[data-role=translation]").inner_text() == predict(pipes["translation"], text, beam_size=1)


def test_speech_file_upload(page, served):
    _, pipes = served
    section = panel(page, "speech")
    section.locator("input[type=file][data-role=file]").set_input_files(str(WAV))
    run(section)
    expected = predict(pipes["speech"], str(WAV))
    assert section.locator("[data-role=transcript]").inner_text() == expected
    screenshot(section, "speech")
    # The decoder choice goes with the upload (as the multipart form's "options" field).
    decoder = section.locator("select[data-role=decoder]")
    assert decoder.input_value() == pipes["speech"].model.parse_options({})["decoder"]
    decoder.select_option("beam")
    run(section)
    assert section.locator("[data-role=transcript]").inner_text() == predict(pipes["speech"], str(WAV), decoder="beam")
    # A beam size the task refuses comes back as the API's message: the options reached the server.
    beam = section.locator("input[data-role=beam_size]")
    beam.fill("0")
    with predict_response(page) as answer:
        run(section, state="error")
    message = answer.value.json()["error"]
    assert answer.value.status == 400 and "beam_size" in message
    assert section.locator("[data-role=error]").inner_text() == message


def test_speech_record_button_sends_16khz_samples(page, served):
    """Chromium's fake microphone plays a corpus clip; the page records it, resamples it to
    16 kHz mono samples and sends them as JSON; the transcript shown is the pipeline's for them."""
    _, pipes = served
    section = panel(page, "speech")
    record = section.locator("button[data-role=record]")
    assert record.is_enabled(), section.locator("[data-role=record-note]").inner_text()
    with page.expect_request(lambda r: r.url.endswith("/api/models/speech/predict") and r.method == "POST") as sent:
        record.click()
        page.wait_for_timeout(1500)
        record.click()
        finish(section)
    body = sent.value.post_data_json
    clip = body["input"]
    # About 1.5 s recorded: at 16 kHz that is well between 0.5 s and 4 s of samples (at 48 kHz, over 4 s).
    assert clip["sample_rate"] == 16000 and 8000 < len(clip["samples"]) < 64000
    samples = np.asarray(clip["samples"], dtype=np.float32)
    assert np.abs(samples).max() > 0.01, "the recording is silent"
    expected = predict(pipes["speech"], {"array": samples, "sampling_rate": 16000})
    assert section.locator("[data-role=transcript]").inner_text() == expected


def test_lm_generation_with_temperature_and_top_k(page, served):
    _, pipes = served
    prompt = "the food was"
    pipe = pipes["lm"]
    section = panel(page, "lm")
    defaults = pipe.model.parse_options({})
    temperature, top_k = section.locator("input[data-role=temperature]"), section.locator("input[data-role=top_k]")
    assert float(temperature.input_value()) == defaults["temperature"]  # the inputs start at the model's defaults
    assert top_k.input_value() == ("" if defaults["top_k"] is None else str(defaults["top_k"]))
    section.locator("textarea[data-role=input]").fill(prompt)
    temperature.fill("0.7")
    top_k.fill("1")  # greedy: deterministic
    run(section)
    expected = predict(pipe, prompt, temperature=0.7, top_k=1)
    generated = section.locator("[data-role=generated]").inner_text()
    assert generated == expected["text"] and expected["continuation"] and len(generated) > len(prompt)
    screenshot(section, "lm")
    # A temperature the task refuses: the API's message in the error box.
    temperature.fill("0")
    run(section, state="error")
    status, body = post(served[0], "lm", {"input": prompt, "options": {"temperature": 0.0, "top_k": 1}})
    assert 400 <= status < 500
    assert section.locator("[data-role=error]").inner_text() == body["error"]
