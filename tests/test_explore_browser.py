"""explore.ipynb as people open it: `serpent explore` starts JupyterLab (its default settings:
widget messages on a kernel subshell) or the Voila dashboard; headless Chromium, driven by
Playwright (the system's chromium, nothing downloaded), runs every cell, changes each widget and
finds after each change a whole plot and no traceback."""

import shutil
from contextlib import contextmanager

import pytest

from serpentlib.records.history import History
from serpentlib.records.serve import start, stop

from .conftest import PACKAGES, make_run

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture
def store(tmp_path):
    if not shutil.which("chromium"):
        pytest.fail("chromium is missing: `make test` installs it (TEST_PACKAGES in the Makefile)")
    db = tmp_path / "metrics.sqlite"
    with History(db) as h:
        for i in range(3):
            h.ingest(make_run(tmp_path, f"r{i}", {**PACKAGES, "make": 16.0 + 2 * i}))
        stage4 = make_run(tmp_path, "r4", {"bash": 1.0, "root": 2.0}, stage="stage4")
        (stage4 / "sizes.csv").unlink()  # stage 4 records phases, no sizes
        h.ingest(stage4)
    return db


def _changes(page, tmp_path, name):
    """Change each widget in turn; after each, the output area shows a whole view."""
    selects = page.locator(".widget-dropdown select")
    runs = page.locator(".widget-select-multiple select")
    steps = [("stage stage2", lambda: selects.nth(0).select_option("stage2")),
             ("metric user_s", lambda: selects.nth(2).select_option("user_s")),
             ("package make", lambda: selects.nth(1).select_option("make")),
             ("stage stage4", lambda: selects.nth(0).select_option("stage4")),
             ("stage stage2", lambda: selects.nth(0).select_option("stage2")),
             ("metric installed_bytes", lambda: selects.nth(2).select_option("installed_bytes")),
             ("no run picked", lambda: runs.first.select_option([]))]
    for i, (what, change) in enumerate(steps):
        change()
        page.wait_for_timeout(2500)
        text = page.locator(".widget-output").first.inner_text()
        widths = page.evaluate("[...document.querySelectorAll('.widget-output img')].map(i => i.naturalWidth)")
        page.screenshot(path=str(tmp_path / f"{name}-{i}.png"))
        assert "Traceback" not in text and "Error" not in text and "failed" not in text, (what, text[-1500:])
        assert widths and all(w > 100 for w in widths), (what, widths, text[-500:])
    assert selects.nth(1).input_value() == "bash", "back in stage 2, its package list and a package picked"


@contextmanager
def opened(store, dashboard: bool = False):
    """The page `serpent explore` prints, in headless Chromium; the server stops afterwards."""
    from playwright.sync_api import sync_playwright

    server, url = start(str(store), dashboard=dashboard)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=90000)
            yield page
            browser.close()
    finally:
        stop(server)


def test_explore_in_jupyterlab_with_its_default_settings(store, tmp_path):
    with opened(store) as page:
        page.wait_for_function("document.body.innerText.includes('| Idle')", timeout=90000)
        page.click("text=Run >> nth=0")
        page.click("text=Run All Cells")
        page.wait_for_selector(".widget-dropdown select", timeout=90000)
        page.wait_for_function("document.body.innerText.includes('| Idle')", timeout=90000)
        _changes(page, tmp_path, "lab")
        assert "Traceback" not in page.locator(".jp-Notebook").inner_text()


def test_explore_as_a_voila_dashboard(store, tmp_path):
    with opened(store, dashboard=True) as page:
        page.wait_for_selector(".widget-dropdown select", timeout=120000)
        page.wait_for_timeout(3000)
        _changes(page, tmp_path, "voila")
        assert "Traceback" not in page.inner_text("body")
