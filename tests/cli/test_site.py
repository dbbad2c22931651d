"""The committed leaderboard site matches a fresh build of the committed results."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from benchmark.leaderboard import build_site
from benchmark.training.recipes import card_recipe_mismatches

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
        cards=ROOT / "leaderboard" / "zoo" / "cards",  # what `make site` reads by default
        recipe_check=card_recipe_mismatches,  # as `bench leaderboard build` passes it
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


def test_robust_entries_of_an_earlier_recipe_carry_the_badge(tmp_path):
    """From the committed cards, or the card block a run recorded where the weights are not
    distributed; the published recipe's entries and builds without the check carry none."""
    results = ROOT / "leaderboard" / "results"
    cards = ROOT / "leaderboard" / "zoo" / "cards"
    build_site(results, tmp_path / "site", cards=cards, recipe_check=card_recipe_mismatches)
    pages = {p.name: p.read_text() for p in (tmp_path / "site").glob("entry-*.html")}
    badge = '<span class="badge warn">earlier training recipe</span>'
    earlier = [n for n in pages if n.startswith("entry-retinamnist--") and "--trades,steps=3-" in n]
    lost = [n for n in pages if n.startswith("entry-breastmnist--") and "--pgd_at,steps=3-" in n]
    published = [n for n in pages if "--pgd_at,eps=0.00784313725490196,steps=7-" in n]
    undefended = [
        n for n in pages if n.startswith("entry-retinamnist--resnet18_") and "--" not in n[19:]
    ]
    assert earlier and lost and published and undefended
    assert all(badge in pages[n] for n in earlier + lost)
    assert "weights not distributed" in pages[lost[0]]
    assert not any(badge in pages[n] for n in published + undefended)
    board = (tmp_path / "site" / "board-retinamnist--linf-8-255.html").read_text()
    assert "Badge <span" in board
    build_site(results, tmp_path / "plain", cards=cards)
    plain = (tmp_path / "plain" / "board-retinamnist--linf-8-255.html").read_text()
    assert "earlier training recipe" not in plain
    # A standard model trained otherwise than its dataset's standard recipe: its undefended
    # entry and the inference-time defenses that deploy it carry the badge too.
    import json
    import shutil

    other = tmp_path / "cards"
    shutil.copytree(cards, other)
    card_path = other / "resnet18_retinamnist_28px_s0.json"
    card = json.loads(card_path.read_text())
    card["recipe"]["epochs"] = 100
    card_path.write_text(json.dumps(card))
    build_site(results, tmp_path / "other", cards=other, recipe_check=card_recipe_mismatches)
    pages = {p.name: p.read_text() for p in (tmp_path / "other").glob("entry-*.html")}
    s0 = "entry-retinamnist--resnet18_retinamnist_28px_s0-fd70100b5c80"
    jpeg = [n for n in pages if n.startswith(f"{s0}--jpeg-")]
    bare = [n for n in pages if n.startswith(s0) and n.count("--") == 1]
    assert jpeg and bare and all(badge in pages[n] for n in jpeg + bare)
    assert not any(badge in pages[n] for n in published)  # robust models: their own cards


def test_an_inference_time_defense_shows_its_base_models_seeds_as_such():
    """The clean figure over seeds beside a preprocessing defense is its undefended model's,
    not the defended pipeline's: the board says so."""
    board = (SITE / "board-pneumoniamnist--linf-8-255.html").read_text()
    rows = [r for r in board.split("<tr")[1:] if "over the recipe" not in r]
    jpeg = next(r for r in rows if ">jpeg<" in r or ">jpeg " in r)
    none = next(r for r in rows if ">none<" in r or ">none " in r)
    assert "seeds, base model)</small>" in jpeg
    assert "seeds)</small>" in none and "base model" not in none


_LINK = re.compile(r'(?:href|src)="([^"]*)"')
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


def test_every_relative_link_of_the_site_resolves_inside_it():
    """The site is self-contained: every relative href and src of every page names a file of
    the site (and an id on that page when it has a fragment), never one of the repository."""
    pages = sorted(SITE.rglob("*.html"))
    assert pages, "leaderboard/site is missing: run make site"
    broken = []
    for page in pages:
        for link in _LINK.findall(page.read_text(encoding="utf-8")):
            if not link or _EXTERNAL.match(link):
                continue
            path, _, fragment = link.partition("#")
            target = (page.parent / unquote(path.split("?")[0])).resolve() if path else page
            if not target.is_file() or not target.is_relative_to(SITE.resolve()):
                broken.append(f"{page.relative_to(SITE)}: {link}")
            elif (
                fragment
                and target.suffix == ".html"
                and f'id="{fragment}"' not in target.read_text(encoding="utf-8")
            ):
                broken.append(f"{page.relative_to(SITE)}: {link} (no id {fragment!r})")
    assert not broken, "links that leave the site or miss: " + ", ".join(broken[:10])


def test_the_submit_page_says_how_to_send_and_who_reviews():
    page = (SITE / "submit.html").read_text(encoding="utf-8")
    for text in (
        "bench new-submission",
        "pull request",
        "maintainers",
        "--exploratory",
        'id="guide"',
        'id="contributing"',
    ):
        assert text in page, text
