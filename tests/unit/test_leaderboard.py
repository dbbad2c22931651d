"""The leaderboard: entries and ranking from real published results, escaping of untrusted
text, byte-identical builds, invalid files reported, and immutable publishing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from benchmark.errors import ResultsError
from benchmark.leaderboard import boards, build_site, group_entries, load_runs
from benchmark.leaderboard.publish import add_result, provenance_problems

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "leaderboard" / "results"
# Real published runs: an undefended model (two suites) and two defended runs.
PICK = [
    "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0",
    "pneumoniamnist/defense/resnet18_pneumoniamnist_28px_s0",
    "pneumoniamnist/quick/resnet18_pneumoniamnist_28px_s0",
    "pneumoniamnist/standard/resnet18_pneumoniamnist_28px_s0",
    "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0__median_filter",
    "pneumoniamnist/medrdf/resnet18_pneumoniamnist_28px_s0__gaussian_smoothing",
]
EVIL = '<script>alert("x")</script>'


def _newest(folder: Path) -> Path:
    return sorted(folder.glob("*.json"))[-1]


def _newest_oblivious_only(folder: Path) -> Path:
    """The newest run of ``folder`` evaluated without the adaptive threat model."""
    return [
        p
        for p in sorted(folder.glob("*.json"))
        if "adaptive" not in json.loads(p.read_text())["config"]["threat_models"]
    ][-1]


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """The PICK folders' newest runs, but the median filter's newest oblivious-only run (the
    Gaussian smoothing run is adaptive too: one defense of each kind)."""
    root = tmp_path / "results"
    for rel in PICK:
        pick = _newest_oblivious_only if rel == PICK[4] else _newest
        src = pick(RESULTS / rel)
        (root / rel).mkdir(parents=True)
        shutil.copyfile(src, root / rel / src.name)
    # An untrusted submission name, in a valid file.
    mf = root / PICK[4]
    doc = json.loads(_newest(mf).read_text())
    doc["defense"]["name"] = EVIL
    doc["defense"]["authors"] = [EVIL]
    _newest(mf).write_text(json.dumps(doc))
    # A broken file and a file of an unknown schema version.
    bad = root / "pneumoniamnist" / "broken" / "m"
    bad.mkdir(parents=True)
    (bad / "run.json").write_text("{not json")
    future = json.loads(_newest(root / PICK[0]).read_text())
    future["schema_version"] = "9.0"
    (bad / "future.json").write_text(json.dumps(future))
    return root


def test_entries_group_suites_and_boards_rank_by_worst_case(published):
    runs, invalid = load_runs(published)
    assert {i.path for i in invalid} == {
        "pneumoniamnist/broken/m/run.json",
        "pneumoniamnist/broken/m/future.json",
    }
    entries = group_entries(runs)
    labels = {e.label: e for e in entries}
    assert set(labels) == {"none", "median_filter", "gaussian_smoothing"}
    assert {r.suite for r in labels["none"].runs} == {"defense", "medrdf", "quick", "standard"}
    eight = next(b for b in boards(entries) if b.kind == "linf" and b.title == "L-inf 8/255")
    assert eight.protocol is not None and eight.board_id == "linf-8-255"
    by = {r.entry.label: r for r in eight.rows}
    # Every published run predates the protocols: every row is exploratory, none ranked, and
    # the reason says why (no run of its track's protocol).
    assert eight.n_ranked == 0
    assert all(r.status == "exploratory" and r.rank is None for r in eight.rows)
    assert by["none"].reason == "no protocol: the run was not made with bench evaluate --protocol"
    for d in ("median_filter", "gaussian_smoothing"):
        assert by[d].reason == by["none"].reason
    # The screening note keeps what already kept a row out of the older screening ranks.
    assert by["median_filter"].details["screening_note"] == "evaluated only obliviously"
    gs = by["gaussian_smoothing"]
    assert gs.details["screening_note"] is None
    # The undefended model's screening key is the lowest balanced worst case over its runs
    # (medrdf, quick and defense all reach 8/255), with the plain figure of the same block.
    blocks = [
        (w.robust_balanced_accuracy, w.robust_accuracy.value, run.suite)
        for run in labels["none"].runs
        for w in run.worst_cases()
        if w.at_linf(8 / 255)
    ]
    assert len(blocks) == 3
    none = by["none"]
    lacking = [suite for bal, _, suite in blocks if bal is None]
    if lacking:
        assert none.key_value is None
        assert none.details["accuracy"] == min(plain for _, plain, _ in blocks)
        assert none.details["screening_note"].startswith(f"the {lacking[0]} run predates")
    else:
        assert (none.key_value, none.details["accuracy"]) == min((b, p) for b, p, _ in blocks)
        assert [r.entry.label for r in eight.rows].index("gaussian_smoothing") < [
            r.entry.label for r in eight.rows
        ].index("none")  # listed by the screening key, highest first
    corr = next(b for b in boards(entries) if b.kind == "corruptions")
    assert [r.entry.label for r in corr.rows] == ["none"] and corr.rows[0].key_value > 0


def test_boards_rank_by_the_balanced_worst_case(tmp_path):
    """A defense that keeps plain accuracy by answering the majority class is listed below one
    with a higher balanced worst case; a run without the balanced figure is listed last."""
    root = tmp_path / "results"
    picks = {
        d: f"pneumoniamnist/defense/resnet18_pneumoniamnist_28px_s0__{d}"
        for d in ("gaussian_smoothing", "median_filter", "jpeg")
    }
    docs = {}
    for d, rel in picks.items():
        src = _newest(RESULTS / rel)
        (root / rel).mkdir(parents=True)
        docs[d] = (root / rel / src.name, json.loads(src.read_text()))

    def worst_8(doc):
        return next(
            w for w in doc["worst_case_by_threat_model"]["any"] if abs(w["eps"] - 8 / 255) < 1e-9
        )

    gs, mf = worst_8(docs["gaussian_smoothing"][1]), worst_8(docs["median_filter"][1])
    assert gs["robust_accuracy"]["value"] > mf["robust_accuracy"]["value"]
    gs["robust_balanced_accuracy"] = mf["robust_balanced_accuracy"] / 2  # majority answers
    for w in docs["jpeg"][1]["worst_case_by_threat_model"]["any"]:
        w.pop("robust_balanced_accuracy")  # a run from before the balanced figure
    for path, doc in docs.values():
        path.write_text(json.dumps(doc))
    runs, invalid = load_runs(root)
    assert not invalid
    eight = next(
        b for b in boards(group_entries(runs)) if b.kind == "linf" and b.title == "L-inf 8/255"
    )
    # Listed by the screening key (none is ranked: the runs predate the protocol).
    order = [(r.entry.label, r.rank, r.status) for r in eight.rows]
    assert order == [
        ("median_filter", None, "exploratory"),
        ("gaussian_smoothing", None, "exploratory"),
        ("jpeg", None, "exploratory"),
    ]
    jpeg = eight.rows[2]
    assert jpeg.key_value is None
    assert jpeg.details["screening_note"] == "the defense run predates the balanced worst case"
    assert eight.rows[1].details["accuracy"] == gs["robust_accuracy"]["value"]
    assert eight.chance == 0.5  # two classes: a constant answer scores 50 % balanced


def test_site_escapes_untrusted_text_and_builds_byte_identically(published, tmp_path):
    a = build_site(
        published, tmp_path / "a", data_cards=ROOT / "data_cards", readme=ROOT / "README.md"
    )
    b = build_site(
        published, tmp_path / "b", data_cards=ROOT / "data_cards", readme=ROOT / "README.md"
    )
    assert a.pages == b.pages > 5 and len(a.invalid) == 2
    files_a = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    files_b = sorted(
        p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()
    )
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    pages = "".join(p.read_text() for p in (tmp_path / "a").glob("*.html"))
    assert EVIL not in pages and "&lt;script&gt;alert(" in pages
    index = (tmp_path / "a" / "index.html").read_text()
    assert "pneumoniamnist/broken/m/run.json" in index  # invalid files are named on the index
    assert "http://" not in pages.replace("http://www.w3.org/2000/svg", "")
    assert "https://cdn" not in pages
    entry = next((tmp_path / "a").glob("entry-*median_filter*.html")).read_text()
    assert "<svg" in entry and 'href="raw/pneumoniamnist/medrdf/' in entry
    assert (tmp_path / "a" / "dataset-pneumoniamnist.html").is_file()
    assert "submission.toml" in (tmp_path / "a" / "submit.html").read_text()


def test_the_sites_markdown_links_stay_inside_the_site(published, tmp_path):
    repo = tmp_path / "repo"
    (repo / "submissions").mkdir(parents=True)
    (repo / "docs").mkdir()
    (repo / "data_cards").mkdir()
    (repo / "README.md").write_text(
        "# Repo\n\n## Defenses and submissions\n\nSee [the guide](submissions/README.md), "
        "[how to send it](CONTRIBUTING.md), [notes](docs/notes.md), "
        "[a paper](https://example.org/p) and ![frames](docs/frames.png "
        "'frames').\n\n## Next\n"
    )
    (repo / "submissions" / "README.md").write_text("# Submissions\n\n## Folder\n\nText.\n")
    (repo / "CONTRIBUTING.md").write_text("# Contributing\n\nOpen a pull request.\n")
    (repo / "docs" / "notes.md").write_text("notes")
    (repo / "docs" / "frames.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "outside.png").write_bytes(b"\x89PNG outside")
    (repo / "data_cards" / "pneumoniamnist.md").write_text(
        "---\ntitle: P\n---\n[Submit](../submissions/README.md#folder), "
        "![outside](../../outside.png), [the card](pneumoniamnist.md).\n"
    )
    mf = _newest(published / PICK[4])
    doc = json.loads(mf.read_text())
    doc["defense"]["files"] = [
        {"path": "defense.py", "sha256": "e" * 64, "tracked": False, "modified": False}
    ]
    mf.write_text(json.dumps(doc))
    site = tmp_path / "site"
    build_site(published, site, data_cards=repo / "data_cards", readme=repo / "README.md")
    submit = (site / "submit.html").read_text()
    assert 'href="submit.html#guide"' in submit and 'href="submit.html#contributing"' in submit
    assert 'href="https://example.org/p"' in submit
    assert "notes" in submit and "docs/notes.md" not in submit  # not on the site: unlinked
    assert 'src="files/docs/frames.png"' in submit
    assert (site / "files" / "docs" / "frames.png").read_bytes() == b"\x89PNG fake"
    assert "<h1>Submissions</h1>" not in submit and "<h3>Folder</h3>" in submit
    assert "Open a pull request." in submit
    card = (site / "dataset-pneumoniamnist.html").read_text()
    assert 'href="submit.html#guide"' in card and 'href="dataset-pneumoniamnist.html"' in card
    assert "outside.png" not in card and ">outside<" not in card and "outside" in card
    assert not (site / "files" / "outside.png").exists()
    entry = next(site.glob("entry-*median_filter*.html")).read_text()
    assert "<code>defense.py</code> sha256 <code>eeeeeeeeeeee</code> (untracked by git)" in entry


def test_publishing_validates_and_never_overwrites(published, tmp_path):
    src = _newest(published / PICK[0])
    with pytest.raises(ResultsError, match=r"not a protocol run \(no protocol"):
        add_result(src, tmp_path / "pub")  # every published run predates the protocol
    assert not (tmp_path / "pub").exists()
    target, added = add_result(src, tmp_path / "pub", exploratory=True)
    assert added and target.read_bytes() == src.read_bytes()
    assert add_result(src, tmp_path / "pub", exploratory=True) == (target, False)
    changed = tmp_path / "changed.json"
    doc = json.loads(src.read_text())
    doc["metrics"]["clean"]["accuracy"]["value"] = 0.5
    changed.write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match="immutable"):
        add_result(changed, tmp_path / "pub", exploratory=True)
    doc["git"]["dirty"] = True
    dirty = tmp_path / "dirty.json"
    dirty.write_text(json.dumps(doc))
    assert provenance_problems(doc) == ["git.dirty (the run used uncommitted code)"]
    with pytest.raises(ResultsError, match="incomplete provenance"):
        add_result(dirty, tmp_path / "pub2")
    doc["git"]["dirty"] = False  # git status ignores untracked files; the file list does not
    doc["defense"] = {
        "files": [
            {"path": "README.md", "sha256": "a" * 64, "tracked": True, "modified": False},
            {"path": "defense.py", "sha256": "b" * 64, "tracked": True, "modified": True},
            {"path": "submission.toml", "sha256": "c" * 64, "tracked": False},
        ]
    }
    assert provenance_problems(doc) == [
        "defense.files (the submission's defense.py, submission.toml not committed)"
    ]


def test_paper_links_are_escaped_and_only_http():
    from benchmark.leaderboard.build import paper_link

    assert str(paper_link("Madry et al. https://arxiv.org/abs/1706.06083")).startswith(
        '<a href="https://arxiv.org/abs/1706.06083">'
    )
    assert str(paper_link("Feature squeezing", "https://arxiv.org/abs/1704.01155 Sec. 3.2")) == (
        '<a href="https://arxiv.org/abs/1704.01155">Feature squeezing</a>'
    )
    assert (
        str(paper_link("<b>x</b> javascript:alert(1)"))
        == "&lt;b&gt;x&lt;/b&gt; javascript:alert(1)"
    )
    evil = str(paper_link('x https://a.b/"onmouseover=alert(1)'))
    assert '"onmouseover' not in evil and "&#34;onmouseover" in evil


def test_crafted_paths_are_refused(published, tmp_path):
    src = _newest(published / PICK[0])
    outside = tmp_path / "evil"  # an absolute path outside the published folder
    for bad in (str(outside), "../../x", "a/b", ".hidden"):
        doc = json.loads(src.read_text())
        doc["config"]["dataset"] = bad
        crafted = tmp_path / "crafted.json"
        crafted.write_text(json.dumps(doc))
        with pytest.raises(ResultsError, match="not a plain name"):
            add_result(crafted, tmp_path / "pub", exploratory=True)
        # in a published tree the same file is left out of the site, the rest still builds
        folder = published / "pneumoniamnist" / "crafted" / "m"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "x.json").write_text(json.dumps(doc))
        runs, invalid = load_runs(published)
        assert "pneumoniamnist/crafted/m/x.json" in {i.path for i in invalid}
        assert all(r.doc["config"]["dataset"] == "pneumoniamnist" for r in runs)
    assert not (tmp_path / "pub").exists() and not outside.exists()
    with pytest.raises(ResultsError, match="refusing to replace"):
        build_site(published, published.parent)


def test_entry_slugs_are_unique_and_plain(published):
    entries = group_entries(load_runs(published)[0])
    slugs = [e.slug for e in entries]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[A-Za-z0-9_.=,-]+", s) for s in slugs)


def test_site_publishes_the_runs_as_a_csv(published, tmp_path):
    import pandas as pd

    from benchmark.results.dataframe import COLUMNS

    build_site(published, tmp_path / "site")
    table = pd.read_csv(tmp_path / "site" / "raw" / "results.csv")
    assert tuple(table.columns) == COLUMNS
    runs, _ = load_runs(published)
    assert sorted(set(table["path"])) == sorted(r.path for r in runs)
    for path in table["path"]:
        assert (tmp_path / "site" / "raw" / path).is_file()  # beside the raw JSON it comes from
    assert (table["kind"] == "clean").sum() == len(runs)
    assert (table["kind"] == "attack").sum() == sum(len(r.attacks) for r in runs)


def test_paper_mean_columns_are_the_mean_of_the_attack_columns():
    """A column a table calls a mean is the mean of the figures before it in its row (a
    figure copied wrong, or a row that is not what its columns say, breaks it)."""
    import json

    from benchmark.leaderboard.build import PAPER_NUMBERS

    tables = [
        t for t in json.loads(PAPER_NUMBERS.read_text())["tables"] if "(mean)" in t["columns"][-1]
    ]
    assert tables, "no table has a mean column"
    for t in tables:
        for name, values in t["rows"].items():
            *cells, mean = (float(v) for v in values)
            assert len(cells) == len(t["columns"]) - 1
            # The paper prints one decimal: its mean is within 0.05 of the exact one.
            assert abs(sum(cells) / len(cells) - mean) <= 0.05 + 1e-9, (t["table"], name)


def test_mdda_table3_columns_are_clean_and_attacks_of_the_preset():
    """MDDA Table 3's columns are clean accuracy, attacks of our ``mdda_transfer`` preset in
    its order, and their mean (the paper names PGD too but prints no column for it)."""
    import json

    from benchmark.attacks.presets import PRESETS
    from benchmark.leaderboard.build import PAPER_NUMBERS

    attacks = [dict(c.params)["base_attack"] for c in PRESETS.get("mdda_transfer").cells]
    tables = [
        t for t in json.loads(PAPER_NUMBERS.read_text())["tables"] if t["suite"] == "mdda_transfer"
    ]
    assert tables
    for t in tables:
        first, *middle, last = (c.lower().replace("-", "") for c in t["columns"])
        assert (first, last) == ("clean", "acc (mean)")
        assert middle == [a for a in attacks if a in middle] and len(middle) == 3
        assert "PGD" in t["note"]  # the missing column is said, not silently dropped


def test_paper_numbers_with_a_source_are_in_that_paper(shared_data):
    """Numbers copied from a paper come from its text, not from memory: every figure of a
    table that names its source file appears in that paper (as the paper prints it)."""
    import json
    import re

    from benchmark.leaderboard.build import PAPER_NUMBERS

    papers = shared_data.parent / "papers"
    tables = [t for t in json.loads(PAPER_NUMBERS.read_text())["tables"] if t.get("source")]
    assert tables, "no table names its source"
    for t in tables:
        text = (papers / t["source"]).read_text()
        for name, values in t["rows"].items():
            # The row as the paper prints it: its name, then its figures in order (71.0 = 71).
            printed = [f"{float(v):g}" for v in values]
            pattern = r"\s+".join([re.escape(name), *map(re.escape, printed)])
            assert re.search(pattern, text), (
                f"{t['table']}: row {name} {printed} not in {t['source']}"
            )
