"""The built site in a real browser: Debian's Chromium driven headless by Playwright.

Loads the index from the file system, follows a link to a leaderboard, sorts a column and
checks the order, filters rows, opens an entry page and finds its charts; records console
errors and every request, which must stay inside the site folder; and checks that a
submission name containing ``<script>`` is shown as text. ``make test`` installs Chromium
(``apt-get install chromium``) when it runs as root, and Playwright (the ``dev`` extra).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from benchmark.leaderboard import build_site
from benchmark.leaderboard.ledger import LEDGER, init_ledger

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "leaderboard" / "results"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
EVIL = "<script>window.__pwned = 1</script>evil"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from the real published results, one defense renamed to EVIL (a copy
    with a ledger of its own: the renamed files differ from the published ledger)."""
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(RESULTS, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(LEDGER))
    for target in root.glob("pneumoniamnist/*/*__median_filter/*.json"):
        doc = json.loads(target.read_text())
        doc["defense"]["name"] = EVIL
        target.write_text(json.dumps(doc))
    init_ledger(root)
    out = tmp_path_factory.mktemp("site")
    build_site(root, out, data_cards=ROOT / "data_cards", readme=ROOT / "README.md")
    return out


@pytest.fixture(scope="module")
def browser():
    # `make test` installs Chromium when it may; elsewhere the browser tests are skipped,
    # except where BENCH_REQUIRE_BROWSER=1 (CI) makes a missing browser a failure.
    missing = pytest.fail if os.environ.get("BENCH_REQUIRE_BROWSER") == "1" else pytest.skip
    if not CHROMIUM.is_file():
        missing("Chromium is missing: `sudo apt-get install chromium` (make test does it as root)")
    try:
        from playwright import sync_api
    except ImportError:
        missing("Playwright is missing: pip install -e '.[dev]' (make test does it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, site, tmp_path):
    context = browser.new_context()
    pg = context.new_page()
    pg.errors, pg.requests = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: pg.requests.append(r.url))
    yield pg
    context.close()


def _column(pg, table: str, index: int) -> list[str]:
    return pg.eval_on_selector_all(
        f"#{table} tbody tr:not([hidden])",
        f"rows => rows.map(r => r.cells[{index}].textContent.trim())",
    )


def test_browse_sort_filter_and_open_an_entry(page, site):
    page.goto((site / "index.html").as_uri())
    assert page.title().startswith("Leaderboards")
    page.click("text=pneumoniamnist >> xpath=ancestor::tr >> a[href*='linf-8-255']")
    assert "L-inf 8/255" in page.inner_text("h1")
    header = page.locator('#board thead th:text-is("balanced worst case %")')
    header.click()  # ascending
    values = [float(v) if v != "-" else -1 for v in _column(page, "board", 2)]
    assert values == sorted(values) and len(values) >= 2
    header.click()  # descending
    values = [float(v) if v != "-" else -1 for v in _column(page, "board", 2)]
    assert values == sorted(values, reverse=True)
    before = len(_column(page, "board", 1))
    page.fill("#filter", "median_filter")
    shown = _column(page, "board", 1)
    assert 1 <= len(shown) < before and all("median_filter" in s for s in shown)
    page.fill("#filter", "")
    assert len(_column(page, "board", 1)) == before
    page.click("#board a[href^='entry-'][href*='median_filter']")
    assert page.locator(".charts svg").count() >= 2
    assert page.locator("a[href^='raw/']").count() >= 1
    assert page.errors == []
    outside = [u for u in page.requests if not u.startswith(site.as_uri())]
    assert outside == [], outside


def test_untrusted_submission_text_is_shown_as_text(page, site):
    entry = next(site.glob("entry-*median_filter*.html"))
    page.goto(entry.as_uri())
    assert EVIL in page.inner_text("main")  # rendered as visible text
    assert page.evaluate("window.__pwned === undefined")
    assert page.errors == []


def test_entry_figures_load_with_alt_text_and_captions(page, site):
    """Every diagnostic figure on the entry pages (``bench diagnose``): each image loaded
    (natural size > 0) with alt text, and each figure has a caption."""
    pages = [p for p in sorted(site.glob("entry-*.html")) if 'class="diag"' in p.read_text()]
    assert pages, "no entry page has diagnostic figures: run bench diagnose on published runs"
    for entry in pages:
        page.goto(entry.as_uri())
        figures = page.locator("figure.diag")
        assert figures.count() >= 3, entry.name
        for i in range(figures.count()):
            fig = figures.nth(i)
            assert fig.locator("figcaption").inner_text().strip(), entry.name
            images = fig.locator("img")
            assert images.count() >= 1
            sizes = images.evaluate_all(
                "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.alt])"
            )
            for complete, width, height, alt in sizes:
                assert complete and width > 0 and height > 0 and alt.strip(), (entry.name, alt)
        assert page.errors == []
