"""The web page in a real browser (issue 10, item 2): Debian's headless chromium, driven by
Playwright with ``executable_path`` (no browser build is ever downloaded; tests/run installs the
Debian packages). A screenshot of every page is kept under the test's tmp folder.

Waits are Playwright's own, each bounded by a timeout, and assert what is shown, never how fast.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from sparkjobs.runs import RunStatus
from ui_runs import HOSTILE, NEW, OLD, RUNNING, XSS, UiProcess, make_ui_store, ui_env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 60_000  # a bound on each wait on a busy machine, not a speed requirement
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-browser")
    store = make_ui_store(root)
    ui = UiProcess("--port", "0", env=ui_env(store), cwd=store.project)
    ui.wait_for_url()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield store, ui, browser
        browser.close()
    ui.stop()


@pytest.fixture
def page(site, tmp_path):
    store, ui, browser = site
    context = browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True, base_url=ui.url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("dialog", lambda dialog: (problems.append(f"a dialog opened: {dialog.message}"), dialog.dismiss()))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    yield page
    context.close()
    assert problems == []  # no script ran that should not (an alert), and the page's own script had no error


def shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_runs_table_sorts_by_a_metric_and_opens_a_run(page, tmp_path):
    page.goto("/")
    expect(page.locator("table.runs tbody tr")).to_have_count(5)
    shot(page, tmp_path, "runs")
    page.get_by_role("link", name=re.compile(r"accuracy")).click()  # first click: best first
    expect(page).to_have_url(re.compile(r"sort_desc=metric%3Aaccuracy"))
    ids = page.locator("table.runs tbody td.id").all_inner_texts()
    assert ids[:2] == [NEW, OLD]
    page.get_by_role("link", name=re.compile(r"accuracy")).click()  # second click: the other way round
    expect(page).to_have_url(re.compile(r"[?&]sort=metric%3Aaccuracy"))
    assert page.locator("table.runs tbody td.id").all_inner_texts()[:2] == [OLD, NEW]
    shot(page, tmp_path, "runs-sorted")
    page.get_by_role("link", name=NEW).click()
    expect(page.locator("h1")).to_contain_text(NEW)


def test_filters_and_column_picker(page, tmp_path):
    page.goto("/")
    page.select_option("select[name=status]", "failed")  # applies at once
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    page.goto("/")
    page.locator("details.columns summary").click()
    page.locator("input[name=col]:not([value=''])").evaluate_all("boxes => boxes.forEach(b => b.checked = false)")
    page.check("input[name=col][value='param:alpha']")
    page.get_by_role("button", name="Apply").click()
    headings = page.locator("table.runs thead th").all_inner_texts()
    assert any("alpha" in h for h in headings) and not any("accuracy" in h for h in headings)
    shot(page, tmp_path, "runs-columns")


def test_run_detail_shows_charts_previews_and_downloads(page, site, tmp_path):
    store = site[0]
    page.goto(f"/runs/{NEW}")
    charts = page.locator("#metrics svg.chart")
    expect(charts).to_have_count(2)  # accuracy and rmse, each logged more than once
    expect(charts.first.locator("polyline")).to_have_count(1)
    image = page.locator("#previews img[alt='outputs/accuracy.png']")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")  # the PNG really decoded
    predictions = page.locator("#previews figure", has_text="outputs/predictions.csv")
    expect(predictions.locator("table.csv tbody tr")).to_have_count(3)
    expect(predictions.locator("table.csv thead")).to_contain_text("sepal_length")
    expect(page.locator("#previews pre.text").first).to_contain_text("alpha 0.1 works best")
    expect(page.locator("#previews")).to_contain_text('"classes"')
    expect(page.locator(".lineage")).to_contain_text(f"model.pkl from run {OLD}")
    shot(page, tmp_path, "run")
    row = page.locator("table.files tr", has_text="outputs/model.pkl")
    with page.expect_download() as waiting:
        row.get_by_role("link", name="Download").click()
    download = waiting.value
    assert download.suggested_filename == "model.pkl"
    assert Path(download.path()).read_bytes() == store.files[NEW]["outputs/model.pkl"]


def test_compare_hides_what_is_equal_until_asked(page, tmp_path):
    page.goto("/")
    page.check(f"input[name=run][value='{OLD}']")
    page.check(f"input[name=run][value='{NEW}']")
    page.get_by_role("button", name="Compare selected").click()
    expect(page.locator("h1")).to_have_text("Compare 2 runs")
    alpha = page.locator("#compare-table tr", has=page.locator("th", has_text=re.compile(r"^alpha$")))
    l1 = page.locator("#compare-table tr", has=page.locator("th", has_text=re.compile(r"^l1_ratio$")))
    expect(page.locator("#diff-only")).to_be_checked()  # on by default
    expect(alpha).to_be_visible()
    expect(l1).to_be_hidden()
    expect(page.locator("#compare-table")).to_contain_text("local.compute: master")
    expect(page.locator("#compare-table")).not_to_contain_text("outputs/predictions.csv")  # same sha256
    expect(page.locator("#compare-table")).to_contain_text("outputs/model.pkl")
    expect(page.locator("svg.chart")).to_have_count(2)
    expect(page.locator("svg.chart").first.locator("polyline")).to_have_count(2)  # overlaid, one per run
    shot(page, tmp_path, "compare")
    page.uncheck("#diff-only")
    expect(l1).to_be_visible()
    expect(page).to_have_url(re.compile(r"diff=0"))
    shot(page, tmp_path, "compare-all")


def test_hostile_names_are_shown_as_text(page, tmp_path):
    page.goto(f"/runs/{HOSTILE}")
    expect(page.locator("#metrics")).to_contain_text(XSS)
    expect(page.locator(".facts")).to_contain_text(XSS)
    expect(page.locator("table.files")).to_contain_text(f"outputs/{XSS}.txt")
    assert page.locator("main script").count() == 0
    shot(page, tmp_path, "hostile")
    page.goto("/")
    expect(page.locator("table.runs")).to_contain_text(XSS)
    page.goto(f"/compare?run={HOSTILE}&run={NEW}")
    expect(page.locator("#compare-table")).to_contain_text(XSS)
    # The 'page' fixture fails the test if any alert opened.


def test_the_log_of_a_running_run_updates_live(page, site, tmp_path):
    store = site[0]
    page.goto(f"/runs/{RUNNING}")
    log = page.locator("#log-text")
    expect(log).to_have_text("step 1 of 3\n")
    store.repo.store.put_bytes(store.repo.log_key(RUNNING), b"step 1 of 3\nstep 2 of 3\n")
    expect(log).to_contain_text("step 2 of 3")
    shot(page, tmp_path, "running")
    record = store.repo.load(RUNNING)
    store.repo.store.put_bytes(store.repo.log_key(RUNNING), b"step 1 of 3\nstep 2 of 3\nstep 3 of 3\n")
    store.repo.save(record.finished(RunStatus.COMPLETED, 0))
    expect(page.locator("#run-status")).to_have_text("completed")  # the page reloads once the run ends
    expect(log).to_contain_text("step 3 of 3")
    expect(page.locator("#live-note")).to_have_count(0)
