"""A recipe's seeds on the site, from the committed model cards: the entry page's table and the
board's column agree with the cards, and an entry whose checkpoint has no card gets neither."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import benchmark as mrb
from benchmark.leaderboard import build_site
from benchmark.models.cards import publish_cards

ROOT = Path(__file__).resolve().parents[2]


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
    # The validation curve of the entry's checkpoint, from its card (2 epochs, epoch kept).
    card = zoo.entry("tiny_cnn_breastmnist_28px_s0").card
    assert 'id="training"' in html
    assert f"validation per epoch (kept: epoch {card['best_epoch']})" in html
    board = (site.out / "board-breastmnist--linf-8-255.html").read_text()
    assert f"{100 * mean:.1f} &plusmn; {100 * sd:.1f} <small>(2 seeds)</small>" in board
    # Without the cards (or with cards of other models), no seed section and no column.
    plain = build_site(results, tmp_path / "plain", cards=None)
    assert 'id="seeds"' not in next(plain.out.glob("entry-*.html")).read_text()
    assert (
        "over the recipe's seeds"
        not in (plain.out / "board-breastmnist--linf-8-255.html").read_text()
    )


def test_training_curve_draws_the_robust_history_and_escapes_the_card():
    from benchmark.leaderboard.training_curve import training_curve

    history = [
        {
            "epoch": e,
            "val_acc": a,
            "val_auc": 0.8,
            "val_balanced_acc": b,
            "val_robust_balanced_acc": r,
        }
        for e, a, b, r in ((1, 0.5, 0.33, 0.18), (2, 0.45, 0.2, 0.2), (3, 0.45, 0.2, 0.2))
    ]
    card = {"model_id": "<script>x</script>", "best_epoch": 1, "history": history}
    svg = str(training_curve(card))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<polyline") == 4 and "val balanced acc (attacked)" in svg
    assert ">1*</text>" in svg  # the kept epoch is starred
    assert training_curve({"history": history[:1]}) is None


def test_an_older_version_of_another_checkpoint_is_named_as_replaced(tmp_path):
    """A retrain published into the same run folder is the entry now; its page names the
    checkpoint the older version evaluated."""
    src = sorted((ROOT / "leaderboard/results/breastmnist/clean").rglob("*.json"))[0]
    folder = tmp_path / "results" / src.relative_to(ROOT / "leaderboard/results").parent
    folder.mkdir(parents=True)
    doc = json.loads(src.read_text())
    new = folder / src.name
    shutil.copyfile(src, new)
    doc["model"]["checkpoint_sha256"] = "ab" * 32  # an earlier training of the recipe
    old = folder / "clean_20000101t000000z.json"
    old.write_text(json.dumps(doc))
    build_site(tmp_path / "results", tmp_path / "site")
    (page,) = list((tmp_path / "site").glob("entry-*.html"))
    html = page.read_text()
    assert "abababababab</code>, an earlier training of this recipe that this one replaced" in html
    shutil.copyfile(src, old)  # the same checkpoint: an older version, nothing replaced
    build_site(tmp_path / "results", tmp_path / "site2")
    assert "an earlier training" not in (tmp_path / "site2" / page.name).read_text()


def test_entry_page_shows_robust_accuracy_over_seeds_scored_on_the_same_images(
    tiny_models, shared_data, tmp_path
):
    """Seeds 0 and 1 screened on one subset (``subset_seed=0``) give each entry page a table of
    both seeds' robust accuracy with its mean and sd; a seed-1 run on its own subset (other
    images) is not paired with them."""
    zoo = tiny_models["zoo"]
    results = tmp_path / "results"
    common = dict(
        attacks="fgsm",
        eps=["8/255"],
        n_examples=16,
        data_dir=shared_data,
        zoo=zoo.root,
        cache_dir=tmp_path / "cache",
        sanity_attack=False,
    )
    docs = {
        seed: mrb.evaluate(
            "breastmnist", "tiny_cnn", seed=seed, subset_seed=0, out_dir=results, **common
        )
        for seed in (0, 1)
    }
    site = build_site(results, tmp_path / "site", cards=None)
    pages = {p.name: p.read_text() for p in site.out.glob("entry-*.html")}
    assert len(pages) == 2
    robust = [docs[s]["attacks"][0]["metrics"]["robust_accuracy"]["value"] for s in (0, 1)]
    mean, sd = statistics.fmean(robust), statistics.stdev(robust)
    for html in pages.values():
        assert 'id="seed-runs"' in html and "(16 images, 2 seeds)" in html
        assert f"{100 * mean:.1f} &plusmn; {100 * sd:.1f}" in html
        assert html.count("(this entry)") == 1
    # The board shows each row's ranking figure (balanced worst case at 8/255) over both seeds.
    worst = [
        next(w for w in docs[s]["worst_case"] if abs(w["eps"] - 8 / 255) < 1e-9)[
            "robust_balanced_accuracy"
        ]
        for s in (0, 1)
    ]
    wmean, wsd = statistics.fmean(worst), statistics.stdev(worst)
    board = (site.out / "board-breastmnist--linf-8-255.html").read_text()
    assert "balanced worst case % over the recipe's seeds</th>" in board
    # Each row's own seed unmarked; the other seed marked where its run would not be ranked
    # (these 16-image tiny-CNN runs are collapsed: their clean interval holds chance).
    from benchmark.leaderboard.runs import Run
    from benchmark.leaderboard.statuses import collapse_reason

    notes = [" (collapsed)" if collapse_reason(Run(docs[s], "x.json")) else "" for s in (0, 1)]
    head = f"{100 * wmean:.1f} &plusmn; {100 * wsd:.1f} <small>(2 seeds, n 16: "
    v0, v1 = (f"s{s} {100 * worst[s]:.1f}" for s in (0, 1))
    assert board.count(f"{head}{v0}, {v1}{notes[1]})</small>") == 1  # seed 0's row
    assert board.count(f"{head}{v0}{notes[0]}, {v1})</small>") == 1  # seed 1's row
    # Seed 1 on its own subset: other images, so no seed table on the lone seed-0 page.
    alone = tmp_path / "alone"
    mrb.evaluate("breastmnist", "tiny_cnn", seed=0, out_dir=alone, **common)
    mrb.evaluate("breastmnist", "tiny_cnn", seed=1, out_dir=alone, **common)
    site2 = build_site(alone, tmp_path / "site2", cards=None)
    assert all('id="seed-runs"' not in p.read_text() for p in site2.out.glob("entry-*.html"))
    board2 = (site2.out / "board-breastmnist--linf-8-255.html").read_text()
    assert "over the recipe's seeds" not in board2


def test_seed_runs_keep_same_label_cells_apart_and_pair_only_equal_settings(
    tiny_models, shared_data, tmp_path
):
    """Columns are keyed by cell id (two PGD cells with one label stay two columns, told
    apart by their ids), and a seed's run with other EOT draws is not paired."""
    import copy

    from benchmark.leaderboard.runs import Run, group_entries
    from benchmark.leaderboard.seed_worst import seed_worst_case
    from benchmark.leaderboard.seeds import seed_runs

    zoo = tiny_models["zoo"]
    docs = [
        mrb.evaluate(
            "breastmnist",
            "tiny_cnn",
            attacks="fgsm",
            eps=["8/255"],
            n_examples=16,
            seed=seed,
            subset_seed=0,
            data_dir=shared_data,
            zoo=zoo.root,
            out_dir=tmp_path / "results",
            cache_dir=tmp_path / "cache",
            sanity_attack=False,
        )
        for seed in (0, 1)
    ]
    for doc in docs:  # a second cell with the same label ("fgsm 8/255"), another id
        twin = copy.deepcopy(doc["attacks"][0])
        twin["cell_id"] += "_twin"
        twin["metrics"]["robust_accuracy"]["value"] = 0.5
        doc["attacks"].append(twin)

    def entries(ds):
        return group_entries([Run(d, f"{i}.json") for i, d in enumerate(ds)])

    found = entries(docs)
    (suite,) = seed_runs(found[0], found)
    # The board's figure over seeds needs the same attack cells in every seed's run.
    assert seed_worst_case(found[0], found, 8 / 255, found[0].runs[0]).seeds == 2
    other = copy.deepcopy(docs[1])  # one cell run with other parameters under the same id
    other["attacks"][0]["config"]["params"]["n_restarts"] = 5
    short = entries([docs[0], other])
    assert seed_worst_case(short[0], short, 8 / 255, short[0].runs[0]) is None
    assert seed_runs(short[0], short)  # the entry table still shows the cells both share
    assert len(suite.columns) == 3 and suite.columns[0] == "clean"
    assert suite.columns[1] != suite.columns[2] and "_twin]" in suite.columns[2]
    assert [r["values"][2] for r in suite.rows] == [0.5, 0.5]
    other = copy.deepcopy(docs[1])
    other["config"]["eot_samples"] = 5
    found = entries([docs[0], other])
    assert seed_runs(found[0], found) == []
    # A run written before the card recorded the defense and selection fields: the same recipe.
    older = copy.deepcopy(docs[1])
    for key in ("defense", "defense_params", "select_eps", "select_steps"):
        older["model"]["card"]["recipe"].pop(key, None)
    found = entries([docs[0], older])
    assert seed_runs(found[0], found)
    # On a protocol board another seed's run counts only if it is a conformant protocol run
    # (these screening runs, given the protocol's record, are not).
    from benchmark.results.protocols import MRB_LINF_V2

    marked = [copy.deepcopy(d) for d in docs]
    for doc in marked:
        doc["protocol"] = MRB_LINF_V2.record()
    found = entries(marked)
    source = found[0].runs[0]
    assert seed_worst_case(found[0], found, 8 / 255, source) is None
    plain = entries(docs)
    assert seed_worst_case(plain[0], plain, 8 / 255, plain[0].runs[0]).seeds == 2
    # Two checkpoints of seed 1 (retrained under the same id and recipe): the newest run
    # pairs, whichever order the entries (sorted by key, i.e. by sha256) come in.
    old1, new1 = copy.deepcopy(docs[1]), copy.deepcopy(docs[1])
    old1["model"]["checkpoint_sha256"], old1["created_at"] = "f" * 64, "2026-01-01T00:00:00Z"
    new1["model"]["checkpoint_sha256"], new1["created_at"] = "0" * 64, "2026-06-01T00:00:00Z"
    old1["attacks"][1]["metrics"]["robust_accuracy"]["value"] = 0.25
    for order in ([docs[0], old1, new1], [docs[0], new1, old1]):
        found = entries(order)
        seed0 = next(e for e in found if e.runs[0].doc["model"]["model_id"].endswith("_s0"))
        (suite,) = seed_runs(seed0, found)
        assert [r["values"][2] for r in suite.rows] == [0.5, 0.5]
    # A checkpoint of another recipe under the same id pattern (a longer training) is no seed.
    longer = copy.deepcopy(docs[1])
    longer["model"]["card"]["recipe"]["epochs"] += 1
    found = entries([docs[0], longer])
    assert seed_runs(found[0], found) == []
