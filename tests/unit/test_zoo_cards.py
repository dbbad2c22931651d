"""Committed model cards: ``bench zoo cards`` publishes the zoo's cards after verifying each
checkpoint, never replaces a published card of other weights unasked, and ``bench zoo report``
builds the same page from the committed cards as from the zoo they came from; a conflict or a
malformed card is one error line, before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.errors import CheckpointError
from benchmark.hashing import file_digest
from benchmark.models.cards import card_path, publish_cards, read_cards
from benchmark.models.zoo import ModelZoo
from benchmark.results.io import dumps_json

S0 = "tiny_cnn_breastmnist_28px_s0"
S1 = "tiny_cnn_breastmnist_28px_s1"
RETINA = "tiny_cnn_retinamnist_28px_s0"
IDS = [S0, S1, RETINA]

runner = CliRunner()


def bench(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _statuses(result) -> dict[str, str]:
    """model id -> status, from the one line per model that bench zoo cards prints."""
    out = {}
    for line in result.stdout.splitlines():
        status, mid = line.split()[:2]
        out[mid.rstrip(":")] = status
    return out


@pytest.fixture
def source(tiny_models, tmp_path) -> ModelZoo:
    """A copy of the session's three tiny models (other tests may add models to the session
    zoo; only these three are copied), free to damage."""
    zoo = ModelZoo(tmp_path / "source")
    for mid in IDS:
        shutil.copytree(tiny_models["zoo"].folder(mid), zoo.folder(mid))
    assert [e.model_id for e in zoo.list()] == IDS
    return zoo


def _retrain(zoo: ModelZoo, mid: str, like: str) -> str:
    """Give ``mid`` the weights of ``like`` (a retrain with other weights, its card updated to
    match, so the zoo itself accepts it); returns the new checkpoint sha256."""
    shutil.copy(zoo.folder(like) / "model.pt", zoo.folder(mid) / "model.pt")
    card = json.loads((zoo.folder(mid) / "card.json").read_text())
    card["checkpoint"]["sha256"] = file_digest(zoo.folder(mid) / "model.pt")
    (zoo.folder(mid) / "card.json").write_text(dumps_json(card))
    zoo.load(mid)
    return card["checkpoint"]["sha256"]


def test_cards_are_the_zoo_cards_byte_for_byte(source, tmp_path):
    cards = tmp_path / "cards"
    out = bench("zoo", "cards", "--zoo", source.root, "--out", cards)
    assert out.exit_code == 0, out.output
    assert _statuses(out) == dict.fromkeys(IDS, "added")
    for mid in IDS:
        sha = source.entry(mid).card["checkpoint"]["sha256"]
        assert f"added     {mid}  sha256 {sha}" in out.stdout.splitlines()
        zoo_card = (source.folder(mid) / "card.json").read_bytes()
        assert (cards / f"{mid}.json").read_bytes() == zoo_card
    assert sorted(p.name for p in cards.iterdir()) == [f"{mid}.json" for mid in IDS]
    assert [c.model_id for c in read_cards(cards)] == IDS
    again = bench("zoo", "cards", "--zoo", source.root, "--out", cards, "--pattern", "*breast*")
    assert again.exit_code == 0, again.output
    assert _statuses(again) == {S0: "unchanged", S1: "unchanged"}


def test_a_corrupt_checkpoint_is_refused_before_its_card_is_written(source, tmp_path):
    cards, published = tmp_path / "cards", tmp_path / "published"
    publish_cards(source, published, pattern=S0)
    card = (published / f"{S0}.json").read_bytes()
    ckpt = source.folder(S0) / "model.pt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    out = bench("zoo", "cards", "--zoo", source.root, "--out", cards)
    assert "1 of 3 cards refused" in one_error_line(out)
    assert _statuses(out) == {S0: "refused", S1: "added", RETINA: "added"}
    (refused,) = [ln for ln in out.stdout.splitlines() if ln.startswith("refused")]
    assert refused.startswith(f"refused   {S0}: checkpoint ") and "but its card says" in refused
    assert sorted(p.name for p in cards.iterdir()) == [f"{S1}.json", f"{RETINA}.json"]
    # --replace does not skip the check: the published card stays as it was
    out = bench("zoo", "cards", "--zoo", source.root, "--out", published, "--replace")
    assert _statuses(out)[S0] == "refused" and out.exit_code == 1
    assert (published / f"{S0}.json").read_bytes() == card


def test_a_model_id_that_is_not_a_plain_name_is_refused(source, tmp_path):
    odd = "odd id"
    shutil.copytree(source.folder(RETINA), source.folder(odd))
    card = json.loads((source.folder(odd) / "card.json").read_text())
    card["model_id"] = odd
    (source.folder(odd) / "card.json").write_text(dumps_json(card))
    outcomes = {o.model_id: o for o in publish_cards(source, tmp_path / "cards")}
    assert outcomes[odd].status == "refused"
    assert outcomes[odd].detail == "'odd id' is not a model id; refused"
    assert not list((tmp_path / "cards").glob("odd*"))
    for bad in ("../escape", ".hidden", "a/b"):
        with pytest.raises(CheckpointError, match="is not a model id"):
            card_path(tmp_path, bad)


def test_a_committed_card_of_other_weights_is_refused_unless_replace(source, tmp_path):
    cards = tmp_path / "cards"
    publish_cards(source, cards)
    before = (cards / f"{S0}.json").read_bytes()
    old = json.loads(before)["checkpoint"]["sha256"]
    new = _retrain(source, S0, like=S1)
    out = bench("zoo", "cards", "--zoo", source.root, "--out", cards)
    assert "1 of 3 cards refused" in one_error_line(out)
    assert _statuses(out) == {S0: "refused", S1: "unchanged", RETINA: "unchanged"}
    (refused,) = [ln for ln in out.stdout.splitlines() if ln.startswith("refused")]
    assert f"records checkpoint {old[:16]}... but the zoo's is {new[:16]}..." in refused
    assert "--replace" in refused
    assert (cards / f"{S0}.json").read_bytes() == before
    out = bench("zoo", "cards", "--zoo", source.root, "--out", cards, "--replace")
    assert out.exit_code == 0, out.output
    assert _statuses(out) == {S0: "replaced", S1: "unchanged", RETINA: "unchanged"}
    assert f"replaced  {S0}  sha256 {new}" in out.stdout.splitlines()
    assert (cards / f"{S0}.json").read_bytes() == (source.folder(S0) / "card.json").read_bytes()


def test_a_card_of_the_same_checkpoint_keeps_the_committed_text(source, tmp_path):
    cards = tmp_path / "cards"
    publish_cards(source, cards)
    before = (cards / f"{S1}.json").read_bytes()
    card = json.loads((source.folder(S1) / "card.json").read_text())
    card["created_at"] = "2030-01-01T00:00:00Z"  # a bit-identical retrain, at another time
    (source.folder(S1) / "card.json").write_text(dumps_json(card))
    (outcome,) = publish_cards(source, cards, pattern=S1)
    assert outcome.status == "unchanged" and "text differs and is kept" in outcome.detail
    assert (cards / f"{S1}.json").read_bytes() == before
    # Not even with --replace: the published card of these weights keeps its provenance.
    (outcome,) = publish_cards(source, cards, pattern=S1, replace=True)
    assert outcome.status == "refused" and "changes created_at:" in outcome.detail
    assert (cards / f"{S1}.json").read_bytes() == before


def test_a_card_of_the_same_checkpoint_may_only_gain_fields(source, tmp_path):
    """--replace writes a card of the published checkpoint that only adds to the committed one
    (what `bench zoo rescore` does), and refuses one that drops or changes a field."""
    cards = tmp_path / "cards"
    publish_cards(source, cards)
    card = json.loads((source.folder(S1) / "card.json").read_text())
    gained = {**card, "rescored": [{"added": ["test balanced_acc"]}]}
    gained["metrics"] = {**card["metrics"], "extra": {"value": 1.0}}
    (source.folder(S1) / "card.json").write_text(dumps_json(gained))
    (outcome,) = publish_cards(source, cards, pattern=S1, replace=True)
    assert outcome.status == "replaced"
    assert json.loads((cards / f"{S1}.json").read_text()) == gained
    lost = {k: v for k, v in gained.items() if k != "history"}
    test = gained["metrics"]["test"]
    lost["metrics"] = {**gained["metrics"], "test": {**test, "acc": {**test["acc"], "value": 0.0}}}
    (source.folder(S1) / "card.json").write_text(dumps_json(lost))
    (outcome,) = publish_cards(source, cards, pattern=S1, replace=True)
    assert outcome.status == "refused"
    assert "changes history, metrics.test.acc.value:" in outcome.detail
    assert json.loads((cards / f"{S1}.json").read_text()) == gained


def test_the_report_from_committed_cards_equals_the_report_from_their_zoo(
    source, tmp_path, monkeypatch
):
    cards = tmp_path / "cards"
    publish_cards(source, cards)
    empty = tmp_path / "empty_zoo"
    pages = {}
    for name, zoo, folder in [
        ("zoo", source.root, ""),  # --zoo alone: a user with no committed cards
        ("cards", empty, cards),  # a clean clone: the committed cards alone
        ("both", source.root, cards),
    ]:
        out = bench(
            "zoo",
            "report",
            "--zoo",
            zoo,
            "--cards",
            folder,
            "--out",
            tmp_path / f"{name}.md",
            "--results",
            "",  # cards only: no section of published models without a card
            "--rebuilds",
            "",  # nor of the repository's retrain records (one names the tiny CNN s0)
        )
        assert out.exit_code == 0, out.output
        assert "(3 models)" in out.stdout
        pages[name] = (tmp_path / f"{name}.md").read_text()
    assert pages["cards"] == pages["zoo"] == pages["both"]
    for mid in IDS:
        sha = source.entry(mid).card["checkpoint"]["sha256"]
        assert f"| `{mid}` |" in pages["zoo"] and f"`{sha[:16]}`" in pages["zoo"]
    # a zoo that lacks a model keeps its row (from its committed card), and the committed
    # folder of the working directory is the default
    shutil.rmtree(source.folder(S1))
    (tmp_path / "repo" / "leaderboard" / "zoo").mkdir(parents=True)
    shutil.copytree(cards, tmp_path / "repo" / "leaderboard" / "zoo" / "cards")
    monkeypatch.chdir(tmp_path / "repo")
    out = bench(
        "zoo",
        "report",
        "--zoo",
        source.root,
        "--out",
        tmp_path / "default",
        "--results",
        "",
        "--rebuilds",
        "",
    )
    assert out.exit_code == 0, out.output
    assert (tmp_path / "default").read_text() == pages["zoo"]


def test_a_conflict_between_committed_and_zoo_cards_is_one_error(source, tmp_path):
    cards = tmp_path / "cards"
    publish_cards(source, cards)
    old = source.entry(S0).card["checkpoint"]["sha256"]
    new = _retrain(source, S0, like=S1)
    target = tmp_path / "model_zoo.md"
    out = bench("zoo", "report", "--zoo", source.root, "--cards", cards, "--out", target)
    line = one_error_line(out)
    assert f"model '{S0}'" in line and str(cards / f"{S0}.json") in line
    assert f"{old[:16]}..." in line and f"{new[:16]}..." in line
    assert f"bench zoo cards --pattern '{S0}' --replace" in line
    assert not target.exists()


def _drop_test_auc(path: Path) -> None:
    card = json.loads(path.read_text())
    del card["metrics"]["test"]["auc"]
    path.write_text(dumps_json(card))


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("not_json", "is not readable JSON"),
        ("missing_field", "is not a complete model card: no 'metrics.test.auc.value'"),
        ("other_id", f"is the card of '{S0}', not of 'tiny_cnn_breastmnist_28px_s7'"),
    ],
)
def test_a_malformed_committed_card_is_one_error_naming_it(source, tmp_path, breakage, expected):
    cards = tmp_path / "cards"
    publish_cards(source, cards)
    broken = cards / f"{S0}.json"
    if breakage == "not_json":
        broken.write_text('{"model_id": ')
    elif breakage == "missing_field":
        _drop_test_auc(broken)
    else:
        broken = broken.rename(cards / "tiny_cnn_breastmnist_28px_s7.json")
    target = tmp_path / "model_zoo.md"
    target.write_text("the page as it was\n")
    out = bench("zoo", "report", "--zoo", tmp_path / "empty", "--cards", cards, "--out", target)
    line = one_error_line(out)
    assert line.startswith(f"error: {broken} ") or line.startswith(f"error: {broken}:"), line
    assert expected in line
    assert target.read_text() == "the page as it was\n"
