"""Screenshots of the built leaderboard for docs/leaderboard.md (`make site-shots`).

Needs Debian's Chromium (`apt-get install chromium`) and Playwright (the `dev` extra).
Usage: python docs/screenshots.py [SITE_DIR] [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

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


def main() -> None:
    site = Path(sys.argv[1] if len(sys.argv) > 1 else "leaderboard/site").resolve()
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/images")
    board = sorted(site.glob("board-pneumoniamnist--linf-8-255.html")) or sorted(
        site.glob("board-*.html")
    )
    entry = sorted(site.glob("entry-pneumoniamnist--*median_filter*.html")) or sorted(
        site.glob("entry-*.html")
    )
    shots = {
        "leaderboard_index.png": site / "index.html",
        "leaderboard_board.png": board[0],
        "leaderboard_entry.png": entry[0],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for name, path in shots.items():
            page.goto(path.as_uri())
            page.screenshot(path=str(out / name), full_page=name != "leaderboard_entry.png")
            print(f"wrote {out / name}")
        browser.close()


if __name__ == "__main__":
    main()
