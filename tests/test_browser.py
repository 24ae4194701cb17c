"""End to end in headless Chromium: the page served by `llm-judge ui`, with the built-in model.

A screenshot of each test is saved under artifacts/."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from .conftest import ROOT, free_port, stop, wait_until_serving
from .test_views_votes import make_run

pytestmark = pytest.mark.model
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def run_db(tmp_path_factory):
    """A stored run, written by this process with scripted models; the page reads the same file."""
    from llm_judge.judges import card
    from llm_judge.testing import fake

    tmp = tmp_path_factory.mktemp("ui")
    store, run_id = make_run(tmp)
    fake.reset()
    records = [{"id": str(i), "verdict": "A", "verdict_swapped": "B", "human": "AB"[i % 2]} for i in range(10)]
    store.add_card(card(records, "fake:always-first", "llmbar-natural", {"method": "plain"}))
    return tmp / "v.db", run_id


@pytest.fixture(scope="module")
def page_url(run_db):
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "llm-judge")
    proc = subprocess.Popen([exe, "ui", "--port", str(port), "--db", str(run_db[0])], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    url = f"http://127.0.0.1:{port}/"
    wait_until_serving(proc, url, 90, "llm-judge ui")
    yield url
    stop(proc)
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr, stderr[-2000:]  # errors reach visitors as messages, never as tracebacks


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.fail("chromium is not installed: bash scripts/setup.sh installs it")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, page_url, request):
    ARTIFACTS.mkdir(exist_ok=True)
    pg = browser.new_page(viewport={"width": 1280, "height": 1400})
    pg.goto(page_url)
    pg.wait_for_selector("#evaluate")
    yield pg
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    pg.close()


def choose(page, dropdown_id: str, text: str):
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option").filter(has_text=text).first.click()


def test_compare_streams_answers_and_shows_the_verdict_table(page, run_db):
    page.locator("#max-tokens textarea, #max-tokens input").first.fill("32")
    page.locator("#prompt textarea").fill("Explain how to bake a chocolate cake without using eggs.")
    page.locator("#evaluate").click()
    page.wait_for_function("() => document.querySelector('#verdict')?.innerText.includes('Winner')", timeout=240000)
    assert page.locator("#answer-a textarea").input_value().strip()
    assert page.locator("#answer-b textarea").input_value().strip()
    flat = [t.strip() for t in page.locator("#verdict-table [role=gridcell]").all_inner_texts()]
    cells = [flat[i:i + 3] for i in range(0, len(flat), 3)]
    assert [r[0] for r in cells] == ["Relevance", "Coherence", "Completeness", "Total"]
    for row in cells:
        for value in row[1:]:
            assert value == "-" or 1 <= float(value) <= 12
    text = page.locator("#verdict").inner_text()
    assert "Both orders agreed" in text and "built-in judge" in text
    assert "Done (saved)" in page.locator("#status").inner_text()
    with sqlite3.connect(run_db[0]) as c:
        saved = json.loads(c.execute("SELECT result FROM comparisons ORDER BY id DESC").fetchone()[0])
    assert saved["candidates"]["A"]["text"] == page.locator("#answer-a textarea").input_value()


def test_bad_input_is_a_message_in_the_page(page):
    page.locator("#model-a input, #model-a textarea").first.fill("nope:model")
    page.locator("#prompt textarea").fill("hello")
    page.locator("#evaluate").click()
    toast = page.get_by_text("unknown model spec 'nope:model'")
    toast.first.wait_for(timeout=30000)
    page.get_by_label("Depth").check()
    page.locator("#model-a input, #model-a textarea").first.fill("embedded")
    page.locator("#evaluate").click()
    page.get_by_text("select up to 3 criteria (4 selected)").first.wait_for(timeout=30000)
    assert page.locator("text=Traceback").count() == 0


def test_vote_blind_then_reveal(page, run_db):
    db, run_id = run_db
    page.get_by_role("tab", name="Vote").click()
    choose(page, "vote-run", run_id)
    page.locator("#next-pair").click()
    page.wait_for_function("() => document.querySelector('#left textarea')?.value.length > 0", timeout=30000)
    left = page.locator("#left textarea").input_value()
    assert "GOOD answer" in left or "meh" in left
    assert "good" not in page.locator("#vote-prompt").inner_text().lower().split("prompt:")[0]
    page.locator("#vote-left").click()
    page.wait_for_function("() => document.querySelector('#reveal')?.innerText.includes('Left was')", timeout=30000)
    assert "1 votes" in page.locator("#agreement").inner_text()
    with sqlite3.connect(db) as c:
        (label_a, label_b, shown_left, choice), = c.execute("SELECT label_a, label_b, shown_left, choice FROM votes")
    assert choice == ("A" if shown_left == label_a else "B")
    expected_left = "GOOD answer" if shown_left == "good" else "meh"
    assert left == expected_left


def test_open_a_stored_run(page, run_db):
    _db, run_id = run_db
    page.get_by_role("tab", name="Study").click()
    choose(page, "runs", run_id)
    page.locator("#open-run").click()
    page.wait_for_function("() => document.querySelector('#study-tables')?.innerText.includes('good')", timeout=30000)
    assert run_id in page.locator("#study-head").inner_text()
    assert page.locator("#study-charts svg").count() == 3
    assert "Pairwise verdicts" in page.locator("#study-tables").inner_text()
    page.wait_for_function("() => document.querySelectorAll('a[download]').length >= 3", timeout=10000)
    links = page.eval_on_selector_all("a[download]", "els => els.map(e => e.getAttribute('href'))")
    assert {link.rsplit(".", 1)[-1] for link in links} >= {"csv", "jsonl", "html"}


def test_the_judges_tab_shows_stored_cards(page):
    page.get_by_role("tab", name="Judges").click()
    page.wait_for_function("() => document.querySelector('#judge-cards')?.innerText.includes('fake:always-first')",
                           timeout=30000)
    text = page.locator("#judge-cards").inner_text()
    assert "accuracy, mean of both orders" in text and "llmbar-natural (10 pairs)" in text and "0.50" in text
