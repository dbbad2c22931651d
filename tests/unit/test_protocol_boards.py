"""Protocol boards: statuses, shared ranks from paired tests, and ranks that anyone can rebuild
from the per-image outcomes of the published JSON alone.

The protocol runs are real published BreastMNIST results files turned into schema-2 protocol
runs (the protocol block, the whole split, the protocol's AutoAttack blocks at 2/255 and
8/255) with chosen per-image outcomes, published through ``bench leaderboard add``'s library
call into a temporary results root.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from test_protocols import aa_config
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.leaderboard import boards, build_site, group_entries, load_runs, show_board
from benchmark.leaderboard.publish import add_result
from benchmark.metrics.balanced import balanced_accuracy
from benchmark.metrics.base import wilson_interval
from benchmark.metrics.paired import mcnemar_exact
from benchmark.metrics.ranks import rank_board
from benchmark.results.naming import eps_label
from benchmark.results.outcomes import (
    indices_block,
    labels_block,
    outcomes_block,
    read_labels,
    unpack_outcomes,
)
from benchmark.results.protocols import MRB_LINF_V2

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "leaderboard" / "results" / "breastmnist" / "xu2021_table5"
MODEL = "resnet18_breastmnist_28px_s0"
FOLDERS = {
    "none": MODEL,
    "pgd_at": f"{MODEL}__pgd_at__steps=3",
    "mart": f"{MODEL}__mart__steps=3",
    "trades": f"{MODEL}__trades__steps=3",
    "mpadvt": f"{MODEL}__mpadvt",
    "maadvt": f"{MODEL}__maadvt__steps=3",
}
CLASSES = ["malignant", "normal, benign"]
# BreastMNIST's test split: 156 images (42 malignant), here in a fixed shuffled order.
LABELS = np.random.default_rng(0).permutation(np.array([0] * 42 + [1] * 114))
EVIL = "<script>alert(1)</script>"
runner = CliRunner()


def _vec(labels: np.ndarray, counts: tuple[int, ...]) -> np.ndarray:
    """True for the first ``counts[c]`` images of each class ``c`` (so that smaller counts give
    subsets: nested worst cases and known discordant images)."""
    out = np.zeros(labels.size, dtype=bool)
    for c, k in enumerate(counts):
        out[np.flatnonzero(labels == c)[:k]] = True
    return out


def _scalar(correct: np.ndarray) -> dict:
    k, n = int(correct.sum()), int(correct.size)
    return {"value": k / n, "ci95": list(wilson_interval(k, n)), "ci_method": "wilson", "n": n}


def _attack(template: dict, eps: float, correct: np.ndarray, clean: np.ndarray) -> dict:
    label = eps_label(eps)
    block = copy.deepcopy(template)
    block.update(
        attack="autoattack_ref",
        cell_id=f"autoattack_ref_eps{label.replace('/', '-')}",
        eps=eps,
        eps_label=label,
        norm="linf",
        bounded=True,
        outcomes=outcomes_block(correct),
        config={
            "name": "autoattack_ref",
            "eps": eps,
            "norm": "linf",
            "seed": 0,
            "implementation": "pyautoattack",
            **aa_config("standard", len(CLASSES)),
        },
        metrics={
            "robust_accuracy": _scalar(correct),
            "fooling_ratio": _scalar(clean & ~correct),
        },
    )
    block.pop("threat_model", None)
    block.pop("undefended", None)  # the template run's own figures, on its own images
    return block


def _protocol_doc(
    entry: str,
    *,
    clean: tuple[int, int] = (38, 105),
    robust: dict[float, tuple[int, int]],
    labels: np.ndarray = LABELS,
    predictions: np.ndarray | None = None,
    protocol: bool = True,
    run_id: str = "mrb_linf_v2_20261129t120000z",
) -> dict:
    """A schema-2 protocol run of ``entry`` (a FOLDERS key) on the whole split: clean and
    per-attack correctness chosen by per-class counts (:func:`_vec`)."""
    src = sorted((TEMPLATES / FOLDERS[entry]).glob("*.json"))[-1]
    doc = json.loads(src.read_text())
    n = int(labels.size)
    if predictions is None:  # a wrong answer is the other class (two classes)
        predictions = np.where(_vec(labels, clean), labels, 1 - labels)
    correct = predictions == labels
    for key in ("worst_case_by_threat_model", "worst_case_threat_model", "random_noise"):
        doc.pop(key, None)
    doc["schema_version"] = "2.0.0"
    doc["run_id"], doc["created_at"] = run_id, "2026-11-29T12:00:00Z"
    if protocol:
        doc["protocol"] = MRB_LINF_V2.record()
        doc["convergence"] = {
            "rule": "at most 1 image of those still robust may change",
            "reliable": True,
            "budgets": [
                {
                    "eps": e,
                    "eps_label": eps_label(e),
                    "robust_before": 10,
                    "broken": 0,
                    "attack": {"name": "autoattack_ref", "params": {"steps": 200}},
                    "seconds": 1.0,
                }
                for e in MRB_LINF_V2.budgets
            ],
        }
    data = doc["data"]
    data.pop("subset", None)
    data.update(n=n, n_split=n, split="test")
    data["indices"] = indices_block(np.arange(n), n)
    data["labels"] = labels_block(labels)
    doc["config"].update(suite="mrb_linf_v2", n_examples=None, threat_model="white-box")
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (labels, predictions), 1)
    per_class = {CLASSES[c]: _scalar(correct[labels == c]) for c in (0, 1)}
    doc["metrics"] = {
        "clean": {
            "accuracy": _scalar(correct),
            "auc": doc["metrics"]["clean"]["auc"],
            "outcomes": outcomes_block(correct),
            "per_class_accuracy": {
                "balanced_accuracy": balanced_accuracy(correct, labels),
                "per_class": per_class,
            },
            "confusion_matrix": {"labels": CLASSES, "matrix": matrix.tolist(), "n": n},
        }
    }
    template = doc["attacks"][0]
    doc["attacks"] = [
        _attack(template, eps, _vec(labels, robust[eps]), correct) for eps in sorted(robust)
    ]
    worst, so_far = [], correct.copy()
    for block in doc["attacks"]:
        so_far &= unpack_outcomes(block["outcomes"]["correct"], n)
        worst.append(
            {
                "norm": "linf",
                "eps": block["eps"],
                "eps_label": block["eps_label"],
                "attacks": [b["cell_id"] for b in doc["attacks"] if b["eps"] <= block["eps"]],
                "robust_accuracy": _scalar(so_far),
                "robust_balanced_accuracy": balanced_accuracy(so_far, labels),
            }
        )
    doc["worst_case"] = worst
    for check in (doc.get("convergence") or {}).get("budgets", []):
        # The check attacks the images the worst case leaves robust at its budget.
        at = next(w for w in worst if abs(w["eps"] - check["eps"]) < 1e-9)
        check["robust_before"] = round(at["robust_accuracy"]["value"] * n)
    # The large-eps sanity cells every protocol run adds (they break every image), their check
    # passed; they are not part of the worst case.
    for name, steps in (("pgd", 10), ("apgd_ce", 100)):
        sanity = _attack(template, 64 / 255, np.zeros(n, dtype=bool), correct)
        sanity.update(attack=name, cell_id=f"{name}_eps64-255_steps{steps}", sanity_only=True)
        sanity["config"].update(name=name, params={"steps": steps}, implementation="torchattacks")
        doc["attacks"].append(sanity)
    if (doc.get("defense") or {}).get("kind") == "training":  # attacked on its robust model
        for block in doc["attacks"]:
            block["threat_model"] = "adaptive"
    doc["sanity_checks"] = [
        {"name": "large_eps_pgd", "description": "", "status": "pass", "details": {}, "flag": ""}
    ]
    doc["flags"] = []
    return doc


def _publish(tmp_path: Path, docs: dict[str, dict], exploratory: set[str] = frozenset()) -> Path:
    root = tmp_path / "results"
    for name, doc in docs.items():
        src = tmp_path / "in" / f"{name}.json"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(json.dumps(doc))
        add_result(src, root, exploratory=name in exploratory)
    return root


E2, E8 = 2 / 255, 8 / 255
# Per-class robust counts (malignant, benign) at 2/255 and 8/255 (8/255 within 2/255).
ROBUST = {
    "none": {E2: (30, 90), E8: (12, 60)},
    "pgd_at": {E2: (29, 88), E8: (11, 58)},  # 3 images from "none" at 8/255: not separated
    "mart": {E2: (10, 30), E8: (2, 10)},
    "trades": {E2: (11, 28), E8: (3, 8)},
}


@pytest.fixture
def board_root(tmp_path: Path) -> Path:
    """Four ranked protocol runs, a collapsed one, an unreliable one, a run that is not a
    protocol run, and a protocol run on other data."""
    docs = {name: _protocol_doc(name, robust=r) for name, r in ROBUST.items()}
    # Answers "benign" for every image: the best robust numbers (benign images are never
    # flipped), 73 % plain accuracy, 50 % balanced.
    always = np.ones(LABELS.size, dtype=int)
    docs["mpadvt"] = _protocol_doc(
        "mpadvt", clean=(0, 114), robust={E2: (0, 114), E8: (0, 114)}, predictions=always
    )
    docs["maadvt"] = _protocol_doc("maadvt", robust={E2: (31, 92), E8: (13, 62)})
    docs["maadvt"]["sanity_checks"] = [
        {
            "name": "large_eps_pgd",
            "description": "64/255 brings accuracy to <= 5 %",
            "status": "fail",
            "details": {"accuracy": 0.4},
            "flag": f"robustness at 64/255: possible gradient masking {EVIL}",
        }
    ]
    # Not a protocol run: another configuration of TRADES, published as exploratory.
    docs["trades_b1"] = _protocol_doc(
        "trades", robust={E2: (40, 100), E8: (35, 100)}, protocol=False
    )
    docs["trades_b1"]["config"]["defense_params"] = {"beta": 1, "steps": 3}
    # A protocol run on other data (its sha256 differs): exploratory on the boards.
    docs["pgd_at_s5"] = _protocol_doc("pgd_at", robust={E2: (30, 90), E8: (20, 80)})
    docs["pgd_at_s5"]["config"]["defense_params"] = {"steps": 5}
    docs["pgd_at_s5"]["data"]["sha256"] = "0" * 64
    docs["pgd_at_s5"]["created_at"] = "2026-11-29T13:00:00Z"
    return _publish(tmp_path, docs, exploratory={"trades_b1"})


def _board(root: Path, board_id: str):
    runs, invalid = load_runs(root)
    assert not invalid
    return next(b for b in boards(group_entries(runs)) if b.board_id == board_id)


def _rows(board) -> dict:
    return {r.entry.label: r for r in board.rows}


def test_a_run_of_the_superseded_version_is_published_only_as_exploratory(tmp_path):
    """A conformant mrb_linf_v1 run (PGD-10 sanity cell) is refused by `leaderboard add`
    without --exploratory, and on the v2 boards it is listed exploratory with the reason."""
    from benchmark.errors import ResultsError
    from benchmark.results.conformance import protocol_problems
    from benchmark.results.protocols import MRB_LINF_V1

    old = _protocol_doc("none", robust=ROBUST["none"], run_id="mrb_linf_v1_20261129t120000z")
    old["protocol"] = MRB_LINF_V1.record()
    assert old["attacks"][-1]["attack"] == "apgd_ce"
    old["attacks"].pop()  # version 1 ran PGD-10 alone
    assert protocol_problems(old) == []  # conformant to the version it records
    src = tmp_path / "old.json"
    src.write_text(json.dumps(old))
    with pytest.raises(ResultsError, match=r"a run of mrb_linf_v1, which the boards no longer"):
        add_result(src, tmp_path / "results")
    add_result(src, tmp_path / "results", exploratory=True)
    row = _rows(_board(tmp_path / "results", "linf-8-255"))["none"]
    assert row.status == "exploratory" and row.rank is None
    assert row.reason == "a run of mrb_linf_v1 1.0, not mrb_linf_v2"


def test_the_large_eps_check_is_recomputed_from_the_sanity_blocks():
    """A run whose sanity check says "pass" while its sanity blocks leave 40 % of the images
    correct at 64/255 (per image, worst over PGD-10 and APGD-CE-100) is unreliable: the
    board checks the figure, it does not trust it."""
    from benchmark.leaderboard.statuses import unreliable_reason
    from benchmark.results.view import RunView

    doc = _protocol_doc("pgd_at", robust=ROBUST["pgd_at"])
    assert unreliable_reason(RunView(doc)) is None
    sanity = [b for b in doc["attacks"] if b.get("sanity_only")]
    assert [b["attack"] for b in sanity] == ["pgd", "apgd_ce"]
    # PGD-10 keeps the first 40 % of the images, APGD-CE-100 the first 60 %: 40 % together.
    n = LABELS.size
    keep = np.arange(n)
    sanity[0]["outcomes"] = outcomes_block(keep < 0.4 * n)
    sanity[1]["outcomes"] = outcomes_block(keep < 0.6 * n)
    reason = unreliable_reason(RunView(doc))
    assert reason == (
        f"sanity check large_eps_pgd failed: its attacks leave {np.mean(keep < 0.4 * n):.1%} "
        "at 64/255 (recomputed from the run's sanity blocks; at most 5%)"
    )
    # Either attack alone breaking the images is enough: the worst case per image counts.
    sanity[0]["outcomes"] = outcomes_block(np.zeros(n, dtype=bool))
    assert unreliable_reason(RunView(doc)) is None


def test_statuses_and_shared_ranks_on_a_protocol_board(board_root):
    eight = _board(board_root, "linf-8-255")
    assert eight.protocol is MRB_LINF_V2 and eight.n_ranked == 4
    rows = _rows(eight)
    assert [(r.entry.label, r.rank) for r in eight.rows[:4]] == [
        ("none", "1-2"),
        ("pgd_at (steps=3)", "1-2"),
        ("trades (steps=3)", "3-4"),  # 7.1 % balanced: above mart's 6.8 %, not separated
        ("mart (steps=3)", "3-4"),
    ]
    none = rows["none"]
    robust = _vec(LABELS, ROBUST["none"][E8])
    assert none.status == "ranked" and none.reason is None and none.n == 156
    assert none.key_value == pytest.approx((12 / 42 + 60 / 114) / 2)
    assert none.ci95[0] < none.key_value < none.ci95[1]
    assert none.accuracy == robust.mean()
    assert none.accuracy_ci95 == wilson_interval(int(robust.sum()), 156)
    assert none.protocol == "mrb_linf_v2 2.0"
    # The constant answer has the best robust figures and is listed collapsed, unranked.
    mp = rows["mpadvt"]
    assert mp.status == "collapsed" and mp.rank is None
    assert mp.key_value == 0.5 and mp.accuracy == pytest.approx(114 / 156)
    assert mp.accuracy > max(r.accuracy for r in eight.rows if r.ranked)
    assert mp.reason.startswith("clean balanced accuracy 50.0 % [50.0, 50.0] contains chance")
    ma = rows["maadvt (steps=3)"]
    assert ma.status == "unreliable" and ma.rank is None
    assert ma.reason.startswith("sanity check large_eps_pgd failed: robustness at 64/255")
    tb = rows["trades (beta=1, steps=3)"]
    assert tb.status == "exploratory" and tb.rank is None
    assert tb.reason == "no protocol: the run was not made with bench evaluate --protocol"
    other = rows["pgd_at (steps=5)"]
    assert other.status == "exploratory" and other.rank is None
    assert other.reason.startswith("scored on other data than breastmnist/mrb_linf_v2/")
    # A constant answer last: it is robust by construction and would head the unranked rows.
    assert [r.status for r in eight.rows] == ["ranked"] * 4 + [
        "unreliable",
        "exploratory",
        "exploratory",
        "collapsed",
    ]
    two = _board(board_root, "linf-2-255")
    assert two.n_ranked == 4 and _rows(two)["mpadvt"].status == "collapsed"
    # 4/255 is no board of the protocol: the published screening board is not built from
    # these runs (no figure at 4/255).
    assert all(b.board_id != "linf-4-255" for b in boards(group_entries(load_runs(board_root)[0])))


def test_a_collapsed_screening_row_is_marked_and_listed_last(tmp_path):
    """Before any protocol run every row is exploratory and ordered by its figure; a constant
    answer would head that order (its attacked images are never flipped), so it is marked
    collapsed on the screening boards too and listed last."""
    always = np.ones(LABELS.size, dtype=int)
    docs = {
        "none": _protocol_doc("none", robust=ROBUST["none"], protocol=False),
        "mart": _protocol_doc("mart", robust=ROBUST["mart"], protocol=False),
        "mpadvt": _protocol_doc(
            "mpadvt",
            clean=(0, 114),
            robust={E2: (0, 114), E8: (0, 114)},
            predictions=always,
            protocol=False,
        ),
    }
    root = _publish(tmp_path, docs, exploratory=set(docs))
    board = _board(root, "linf-8-255")
    assert board.n_ranked == 0
    assert [(r.entry.label, r.status) for r in board.rows] == [
        ("none", "exploratory"),
        ("mart (steps=3)", "exploratory"),
        ("mpadvt", "collapsed"),
    ]
    collapsed = board.rows[-1]
    assert collapsed.key_value == 0.5 > max(r.key_value for r in board.rows[:-1])
    assert collapsed.reason.startswith("clean balanced accuracy 50.0 % [50.0, 50.0] contains")


def test_a_board_is_rebuilt_from_the_published_json_alone(board_root):
    """json.load + unpack + rank_board on the published files gives the built board."""
    for board_id, eps in (("linf-8-255", E8), ("linf-2-255", E2)):
        board = _board(board_root, board_id)
        outcomes, labels = {}, None
        for row in board.rows:
            if not row.ranked:
                continue
            doc = json.loads((board_root / row.source.path).read_text())
            n = doc["data"]["n"]
            labels = read_labels(doc["data"]["labels"], n)
            robust = unpack_outcomes(doc["metrics"]["clean"]["outcomes"]["correct"], n)
            for block in doc["attacks"]:
                if block["norm"] == "linf" and block["eps"] <= eps + 1e-12:
                    robust = robust & unpack_outcomes(block["outcomes"]["correct"], n)
            outcomes[row.entry.key] = robust
        rebuilt = rank_board(outcomes, labels, metric="balanced")
        built = [r for r in board.rows if r.ranked]
        assert [b.name for b in rebuilt] == [r.entry.key for r in built]
        for b, r in zip(rebuilt, built, strict=True):
            assert (b.display, b.value, b.ci95, b.n) == (r.rank, r.key_value, r.ci95, r.n)


@pytest.mark.parametrize(("discordant", "display"), [(6, ["1", "2"]), (5, ["1-2", "1-2"])])
def test_the_paired_test_separates_two_entries_through_the_board(tmp_path, discordant, display):
    """Equal class sizes: the stratified sign-flip test is McNemar's; 6 discordant images
    all favouring one entry give p = 2/64 < 0.05 (two ranks), 5 give p = 2/32 (shared)."""
    labels = np.array([0, 1] * 78)
    half = discordant // 2
    docs = {
        "none": _protocol_doc(
            "none", labels=labels, clean=(70, 70), robust={E2: (60, 60), E8: (40, 40)}
        ),
        "pgd_at": _protocol_doc(
            "pgd_at",
            labels=labels,
            clean=(70, 70),
            robust={E2: (60, 60), E8: (40 - half, 40 - (discordant - half))},
        ),
    }
    eight = _board(_publish(tmp_path, docs), "linf-8-255")
    assert [r.rank for r in eight.rows] == display
    a = _vec(labels, (40, 40))
    b = _vec(labels, (40 - half, 40 - (discordant - half)))
    test = mcnemar_exact(a, b)
    assert (test.b10, test.b01) == (discordant, 0)
    assert test.p_value == pytest.approx(2 / 2**discordant)
    shown = show_board(tmp_path / "results", "breastmnist", "linf-8-255")
    assert [r["rank"] for r in shown["rows"]] == display


def test_show_prints_a_board_as_text_and_json(board_root):
    result = runner.invoke(
        app, ["leaderboard", "show", "breastmnist", "linf-8-255", "--root", str(board_root)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("breastmnist L-inf 8/255: 4 of 8 rows ranked")
    assert "protocol mrb_linf_v2 2.0" in lines[0]
    assert lines[1].split()[:2] == ["rank", "key"]
    first = lines[2].split()
    assert first[0] == "1-2" and "ranked" in first
    assert any("collapsed" in line and "contains chance" in line for line in lines)
    result = runner.invoke(
        app,
        ["leaderboard", "show", "breastmnist", "linf-8-255", "--json", "--root", str(board_root)],
    )
    shown = json.loads(result.output)
    assert shown["n_ranked"] == 4 and shown["protocol"] == "mrb_linf_v2 2.0"
    assert shown["test"].startswith("Two entries are compared on the same images")
    row = shown["rows"][0]
    assert set(row) >= {"entry", "rank", "value", "ci95", "n", "protocol", "status", "reason"}
    assert (row["rank"], row["n"], row["status"]) == ("1-2", 156, "ranked")
    result = runner.invoke(
        app, ["leaderboard", "show", "breastmnist", "linf-4-256", "--root", str(board_root)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "error: unknown board 'linf-4-256' for breastmnist; boards: linf-2-255, linf-8-255"
    )
    result = runner.invoke(
        app, ["leaderboard", "show", "nope", "corruptions", "--root", str(board_root)]
    )
    assert (
        result.exit_code == 1 and "unknown dataset 'nope'; datasets: breastmnist" in result.output
    )


def test_the_board_page_shows_ranks_intervals_statuses_and_the_test(board_root, tmp_path):
    build_site(board_root, tmp_path / "a")
    build_site(board_root, tmp_path / "b")
    for page in sorted((tmp_path / "a").glob("*.html")):
        assert page.read_bytes() == (tmp_path / "b" / page.name).read_bytes(), page.name
    html = (tmp_path / "a" / "board-breastmnist--linf-8-255.html").read_text()
    assert "4 of 8 rows ranked." in html and "No protocol run yet" not in html
    assert "<td>1-2</td>" in html and "<td>3-4</td>" in html
    assert '<span class="status collapsed">collapsed</span>' in html
    assert "Holm&#39;s step-down procedure at alpha = 0.05" in html
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    eight = _board(board_root, "linf-8-255")
    none = eight.rows[0]
    assert f"[{100 * none.ci95[0]:.1f}, {100 * none.ci95[1]:.1f}]" in html
    index = (tmp_path / "a" / "index.html").read_text()
    assert "8 entries, 4 ranked" in index
    # An entry page names the protocol and its convergence evidence.
    page = next((tmp_path / "a").glob("entry-breastmnist--*pgd_at,steps=3-*.html")).read_text()
    assert "mrb_linf_v2 2.0 (sha256 <code>" in page
    assert "<th>convergence</th><td>shown (at most 1 image" in page


def test_a_constant_answer_does_not_win_the_corruption_board(tmp_path):
    """The published TRADES model of PneumoniaMNIST answers "pneumonia" for every image: the
    lowest mFP of the board (it never changes its answer), 50 % balanced. It is listed as
    collapsed; the rest are in order of mean corruption balanced accuracy, exploratory
    (they predate the corruption protocol, so nothing is ranked)."""
    import shutil

    src = ROOT / "leaderboard" / "results" / "pneumoniamnist" / "standard"
    root = tmp_path / "results"
    shutil.copytree(src, root / "pneumoniamnist" / "standard")
    board = _board(root, "corruptions")
    assert board.key_name == "mean corruption balanced accuracy"
    rows = _rows(board)
    trades = rows["trades (steps=3)"]
    assert trades.status == "collapsed" and trades.rank is None
    assert "contains chance (1/2 = 50.0 %)" in trades.reason
    assert trades.details["mfp"] == min(r.details["mfp"] for r in board.rows)
    assert not any(r.ranked or r.rank for r in board.rows)
    ordered = [r for r in board.rows if r.status == "exploratory"]
    assert len(ordered) == len(board.rows) - 1 and board.rows[-1] is trades
    assert all(
        r.reason.startswith("not a run of mrb_corruption_v1: no corruption protocol")
        for r in ordered
    )
    keys = [r.key_value for r in ordered]
    assert keys == sorted(keys, reverse=True)
    for r in ordered:
        per_corruption = [np.mean(c["balanced_accuracy"]) for c in r.source.severity["corruptions"]]
        assert r.key_value == pytest.approx(np.mean(per_corruption))


def test_an_unranked_board_says_why():
    from benchmark.leaderboard.show import board_text

    row = {
        "rank": None,
        "value": 0.357,
        "ci95": [0.273, 0.44],
        "n": 156,
        "status": "collapsed",
        "entry": "breastmnist/tiny",
        "protocol": "mrb_linf_v2 2.0",
        "reason": "clean balanced accuracy contains chance",
    }
    shown = {
        "dataset": "breastmnist",
        "title": "L-inf 8/255",
        "n_ranked": 0,
        "n_rows": 1,
        "key": "balanced worst case",
        "protocol": "mrb_linf_v2 2.0",
        "rows": [row],
    }
    assert "every protocol run here is collapsed" in board_text(shown)
    shown["rows"] = [{**row, "status": "exploratory", "protocol": None}]
    assert "no protocol run yet" in board_text(shown)


def test_a_retrained_checkpoint_is_its_own_entry(tmp_path):
    """The same model id retrained to another checkpoint: its protocol run ranks as its own
    entry, the old checkpoint's runs stay apart (no row mixes two checkpoints), and the labels
    name the checkpoints because the id alone no longer tells them apart."""
    old = _protocol_doc("none", robust={E2: (30, 90), E8: (12, 60)}, protocol=False)
    old["config"]["suite"] = "xu2021_table5"
    new = _protocol_doc("none", robust={E2: (20, 80), E8: (10, 50)})
    new["model"]["checkpoint_sha256"] = "ab" * 32
    new["run_id"], new["created_at"] = "mrb_linf_v2_20261129t130000z", "2026-11-29T13:00:00Z"
    root = _publish(tmp_path, {"old": old, "new": new}, exploratory={"old"})
    runs, _ = load_runs(root)
    entries = group_entries(runs)
    assert len(entries) == 2
    assert {e.checkpoint[:8] for e in entries} == {
        "abababab",
        old["model"]["checkpoint_sha256"][:8],
    }
    for entry in entries:
        assert entry.ambiguous and f"(checkpoint {entry.checkpoint[:8]})" in entry.label
        assert {r.doc["model"]["checkpoint_sha256"] for r in entry.runs} == {entry.checkpoint}
    rows = {r.entry.checkpoint[:8]: r for r in _board(root, "linf-8-255").rows}
    assert rows["abababab"].ranked and rows["abababab"].source.run_id == new["run_id"]
    assert not rows[old["model"]["checkpoint_sha256"][:8]].ranked


def _adaptive_run(
    name: str, oblivious: dict, adaptive: dict, *, obfuscation_flag: bool = False
) -> dict:
    """A conformant mrb_linf_adaptive_v2 run of a deterministic preprocessing defense on the
    undefended checkpoint: AutoAttack blocks in the oblivious and the adaptive pass with the
    chosen per-class robust counts."""
    from benchmark.results.protocols import MRB_LINF_ADAPTIVE_V2

    doc = _protocol_doc("none", robust=oblivious)
    doc["protocol"] = MRB_LINF_ADAPTIVE_V2.record()
    doc["config"].update(defense=name, defense_params={}, threat_models=["oblivious", "adaptive"])
    doc["defense"] = {
        "id": name,
        "kind": "preprocessing",
        "randomized": False,
        "differentiable": False,
        "version": "1.0",
        "config": {"randomized": False, "params": {}},
        "eot_samples": 1,
        "draws": 1,
        "threat_models": ["oblivious", "adaptive"],
        "cost": {
            "images": 128,
            "base_ms_per_image": 1.0,
            "defended_ms_per_image": 2.0,
            "overhead": 2.0,
        },
        "sha256": "0" * 64,
    }
    template = doc["attacks"][0]
    clean = unpack_outcomes(doc["metrics"]["clean"]["outcomes"]["correct"], LABELS.size)
    blocks = []
    for tm, counts in (("oblivious", oblivious), ("adaptive", adaptive)):
        for eps in sorted(counts):
            block = _attack(template, eps, _vec(LABELS, counts[eps]), clean)
            block["threat_model"] = tm
            blocks.append(block)
    for tm in ("oblivious", "adaptive"):  # the sanity cell of each pass
        for name, steps in (("pgd", 10), ("apgd_ce", 100)):
            sanity = _attack(template, 64 / 255, np.zeros(LABELS.size, dtype=bool), clean)
            sanity.update(
                attack=name,
                cell_id=f"{name}_eps64-255_steps{steps}",
                threat_model=tm,
                sanity_only=True,
            )
            sanity["config"].update(name=name, params={"steps": steps})
            blocks.append(sanity)
    doc["attacks"] = blocks
    doc["worst_case_by_threat_model"] = {
        tm: doc["worst_case"] for tm in ("oblivious", "adaptive", "any")
    }
    if obfuscation_flag:
        flag = "robustness from obfuscation"
        doc["sanity_checks"] += [
            {
                "name": "oblivious_vs_adaptive",
                "description": "adaptive within 10% of oblivious",
                "status": "fail",
                "details": {},
                "flag": flag,
            }
        ]
        doc["flags"] = [flag]
    return doc


def test_the_adaptive_track_ranks_on_the_same_boards(tmp_path):
    """A preprocessing defense's adaptive-protocol run ranks beside the deterministic track's
    runs, by its worst case over both passes; the oblivious-vs-adaptive gap does not make it
    unreliable (the worst case counts the stronger adaptive attack), but adaptive attacks
    weaker than the oblivious ones do."""
    docs = {"none": _protocol_doc("none", robust=ROBUST["none"])}
    # median: the adaptive attack is much stronger (obfuscation), the worst case is its.
    docs["median"] = _adaptive_run(
        "median_filter",
        {E2: (35, 100), E8: (20, 80)},
        {E2: (5, 20), E8: (1, 5)},
        obfuscation_flag=True,
    )
    # jpeg: the adaptive attacks leave 20 more images robust at 8/255 than the oblivious ones.
    docs["jpeg"] = _adaptive_run("jpeg", {E2: (20, 60), E8: (5, 20)}, {E2: (20, 60), E8: (10, 35)})
    docs["jpeg"]["run_id"] = "mrb_linf_adaptive_v2_20261129t120001z"
    sweeps = [
        {"sweep": "iterations", "steps": 200, "eot_draws": 1, "broken": 0, "seconds": 1.0},
    ]
    docs["median"]["convergence"]["budgets"] = [
        {
            "eps": eps,
            "eps_label": eps_label(eps),
            "robust_before": before,  # what the worst case over both passes leaves
            "broken": 0,
            "attack": {},
            "seconds": 1.0,
            "sweeps": sweeps,
        }
        for eps, before in ((E2, 5 + 20), (E8, 1 + 5))
    ]
    root = _publish(tmp_path, docs)
    rows = {r.entry.label: r for r in _board(root, "linf-8-255").rows}
    assert rows["none"].ranked and rows["median_filter"].ranked
    assert rows["median_filter"].protocol.startswith("mrb_linf_adaptive_v2")
    expected = balanced_accuracy(_vec(LABELS, (1, 5)), LABELS)
    assert rows["median_filter"].key_value == pytest.approx(expected)
    assert rows["median_filter"].rank == "2" and rows["none"].rank == "1"
    jpeg = rows["jpeg"]
    assert jpeg.status == "unreliable" and "adaptive attacks weaker than oblivious" in jpeg.reason
    # Both passes' AutoAttack blocks share a column: it shows the stronger (oblivious) one.
    (column,) = [v for name, v in jpeg.cells.items() if "autoattack" in name]
    assert column == pytest.approx((5 + 20) / LABELS.size)
    # At 2/255 the two passes agree: ranked.
    assert {r.entry.label: r for r in _board(root, "linf-2-255").rows}["jpeg"].ranked
    build_site(root, tmp_path / "site")
    page = next((tmp_path / "site").glob("entry-*median_filter*.html")).read_text()
    assert "mrb_linf_adaptive_v2 2.0" in page
    assert "8/255: 0 of 6 still-robust images broken (iterations sweep, 200 iterations" in page


def test_one_early_run_on_other_data_does_not_push_the_board_off_the_ranks(tmp_path):
    """The reference images are the majority's: a protocol run on other data published
    before the rest is the one made exploratory, not every run after it."""
    docs = {name: _protocol_doc(name, robust=ROBUST[name]) for name in ("none", "mart")}
    docs["odd"] = _protocol_doc("pgd_at", robust={E2: (30, 90), E8: (20, 80)})
    docs["odd"]["data"]["sha256"] = "0" * 64
    docs["odd"]["created_at"] = "2026-11-28T12:00:00Z"  # the oldest run of the board
    docs["odd"]["run_id"] = "mrb_linf_v2_20261128t120000z"
    board = _board(_publish(tmp_path, docs), "linf-8-255")
    status = {r.entry.defense or "none": r.status for r in board.rows}
    assert status == {"none": "ranked", "mart": "ranked", "pgd_at": "exploratory"}
    odd = next(r for r in board.rows if r.entry.defense == "pgd_at")
    assert odd.reason.startswith("scored on other data than")


def test_a_run_that_says_it_converged_is_checked_not_trusted():
    """``reliable: true`` is not enough: every budget of the protocol needs a convergence
    check, and none may have broken more than one still-robust image."""
    from benchmark.leaderboard.statuses import unreliable_reason
    from benchmark.results.view import RunView

    doc = _protocol_doc("none", robust=ROBUST["none"])
    assert unreliable_reason(RunView(doc, "x.json")) is None
    missing = copy.deepcopy(doc)
    missing["convergence"]["budgets"] = missing["convergence"]["budgets"][1:]
    assert unreliable_reason(RunView(missing, "x.json")) == (
        "convergence not shown: no check at 2/255"
    )
    broke = copy.deepcopy(doc)
    broke["convergence"]["budgets"][1]["broken"] = 2
    assert "at 8/255 the check broke 2 images although the run says it converged" in (
        unreliable_reason(RunView(broke, "x.json"))
    )
    both = copy.deepcopy(broke)  # a missing check is named first when both are wrong
    both["convergence"]["budgets"] = both["convergence"]["budgets"][1:]
    assert unreliable_reason(RunView(both, "x.json")) == "convergence not shown: no check at 2/255"


def test_adaptive_weaker_is_counted_per_image():
    """Each pass breaking 10 images the other misses is a failed adaptive attack, although
    both leave the same number robust."""
    from benchmark.leaderboard.statuses import adaptive_weaker_reason

    oblivious = np.ones(40, dtype=bool)
    adaptive = np.ones(40, dtype=bool)
    oblivious[:10], adaptive[10:20] = False, False

    class Stub:
        def worst_case_outcomes(self, norm, eps, tm):
            return {"oblivious": oblivious, "adaptive": adaptive}[tm]

    reason = adaptive_weaker_reason(Stub(), "linf", 8 / 255)
    assert reason is not None and "10 images robust against the attacks on the whole" in reason
    adaptive[:10] = False  # the adaptive pass now breaks everything the oblivious one did
    assert adaptive_weaker_reason(Stub(), "linf", 8 / 255) is None
