"""The committed leaderboard site matches a fresh build of the committed results."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.leaderboard import build_site

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "leaderboard" / "site"


def test_committed_site_is_up_to_date(tmp_path):
    if not (SITE / "index.html").is_file():
        pytest.fail("leaderboard/site is missing: run make site")
    report = build_site(
        ROOT / "leaderboard" / "results",
        tmp_path / "site",
        data_cards=ROOT / "data_cards",
        readme=ROOT / "README.md",
    )
    fresh = {
        p.relative_to(tmp_path / "site") for p in (tmp_path / "site").rglob("*") if p.is_file()
    }
    committed = {p.relative_to(SITE) for p in SITE.rglob("*") if p.is_file()}
    assert fresh == committed, "leaderboard/site is out of date: run make site"
    stale = [
        str(p)
        for p in sorted(fresh)
        if (SITE / p).read_bytes() != (tmp_path / "site" / p).read_bytes()
    ]
    assert not stale, f"leaderboard/site is out of date ({stale[:3]}): run make site"
    assert report.invalid == [], report.invalid
