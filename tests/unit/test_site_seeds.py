"""A recipe's seeds on the site, from the committed model cards: the entry page's table and the
board's column agree with the cards, and an entry whose checkpoint has no card gets neither."""

from __future__ import annotations

import statistics

import benchmark as mrb
from benchmark.leaderboard import build_site
from benchmark.models.cards import publish_cards


def test_entry_page_and_board_show_the_recipes_seeds(tiny_models, shared_data, tmp_path):
    zoo = tiny_models["zoo"]
    cards = tmp_path / "cards"
    publish_cards(zoo, cards, "tiny_cnn_breastmnist_28px_s*")
    results = tmp_path / "results"
    mrb.evaluate(
        "breastmnist",
        "tiny_cnn",
        attacks="fgsm",
        eps=["8/255"],
        n_examples=16,
        data_dir=shared_data,
        zoo=zoo.root,
        out_dir=results,
        cache_dir=tmp_path / "cache",
        sanity_attack=False,
    )
    site = build_site(results, tmp_path / "site", cards=cards)
    accs = [
        zoo.entry(f"tiny_cnn_breastmnist_28px_s{s}").card["metrics"]["test"]["acc"]["value"]
        for s in (0, 1)
    ]
    mean, sd = statistics.fmean(accs), statistics.stdev(accs)
    (page,) = [p for p in site.out.glob("entry-*.html")]
    html = page.read_text()
    assert 'id="seeds"' in html and "tiny_cnn_breastmnist_28px_s1" in html
    assert f"accuracy {100 * mean:.1f} &plusmn; {100 * sd:.1f}" in html
    assert html.count("(this entry)") == 1
    board = (site.out / "board-breastmnist--linf-8-255.html").read_text()
    assert f"{100 * mean:.1f} &plusmn; {100 * sd:.1f} <small>(2 seeds)</small>" in board
    # Without the cards (or with cards of other models), no seed section and no column.
    plain = build_site(results, tmp_path / "plain", cards=None)
    assert 'id="seeds"' not in next(plain.out.glob("entry-*.html")).read_text()
    assert (
        "over the recipe's seeds"
        not in (plain.out / "board-breastmnist--linf-8-255.html").read_text()
    )
