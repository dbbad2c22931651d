"""The generated tables of the docs match the committed results files."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.reports import update_generated_blocks
from benchmark.results import read_result

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["docs/attacks.md", "docs/corruptions.md", "docs/defenses.md"]


@pytest.mark.parametrize("page", PAGES)
def test_generated_blocks_are_up_to_date(page):
    path = ROOT / page
    if not path.is_file():
        pytest.fail(f"{page} is missing; write it and run make docs")
    text = path.read_text()
    new, n = update_generated_blocks(text, ROOT / "leaderboard" / "results", read_result)
    assert n >= 1, f"{page} has no bench:results block"
    assert new == text, f"{page} is out of date with leaderboard/results: run make docs"
