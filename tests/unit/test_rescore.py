"""`bench zoo rescore`: an older card gains the balanced accuracy a card records now."""

from __future__ import annotations

import json

import pytest

from benchmark.errors import CheckpointError
from benchmark.models.zoo import CARD, ModelZoo
from benchmark.training import TrainConfig, train_model
from benchmark.training.rescore import missing_metrics, rescore_card


@pytest.fixture()
def older_card(tmp_path, shared_data):
    """A tiny model of the real BreastMNIST whose card lost its balanced accuracy, as a
    pre-session-22 card has none, and the balanced accuracies it had."""
    zoo = ModelZoo(tmp_path / "zoo")
    entry = train_model(
        TrainConfig(dataset="breastmnist", arch="tiny_cnn", epochs=1, batch_size=64),
        zoo=zoo,
        data_dir=shared_data,
    )
    card = json.loads((entry.path / CARD).read_text())
    had = {s: card["metrics"][s].pop("balanced_acc") for s in ("val", "test")}
    (entry.path / CARD).write_text(json.dumps(card))
    return zoo, entry.model_id, had, shared_data


def test_rescoring_adds_what_training_would_have_written_and_nothing_else(older_card):
    zoo, mid, had, data = older_card
    before = json.loads((zoo.folder(mid) / CARD).read_text())
    assert missing_metrics(before) == {"val": ["balanced_acc"], "test": ["balanced_acc"]}
    out = rescore_card(zoo, mid, data_dir=data)
    assert out == "rescored: val balanced_acc, test balanced_acc"
    after = json.loads((zoo.folder(mid) / CARD).read_text())
    for split in ("val", "test"):
        assert after["metrics"][split]["balanced_acc"] == had[split]
        assert after["metrics"][split]["acc"] == before["metrics"][split]["acc"]
    assert [r["added"] for r in after["rescored"]] == [["val balanced_acc", "test balanced_acc"]]
    unchanged = {k: v for k, v in after.items() if k not in ("metrics", "rescored")}
    assert unchanged == {k: v for k, v in before.items() if k != "metrics"}
    zoo.load(mid)  # the checkpoint still matches its card
    assert rescore_card(zoo, mid, data_dir=data) == "unchanged"


def test_a_card_whose_acc_is_not_recomputed_is_left_as_it_was(older_card):
    zoo, mid, _, data = older_card
    path = zoo.folder(mid) / CARD
    card = json.loads(path.read_text())
    card["metrics"]["test"]["acc"]["value"] += 0.01
    path.write_text(json.dumps(card))
    text = path.read_text()
    with pytest.raises(CheckpointError, match=r"recomputed test ACC .* is not the card's"):
        rescore_card(zoo, mid, data_dir=data)
    assert path.read_text() == text


def test_the_cli_rescores_by_pattern_and_refuses_a_pattern_that_matches_nothing(older_card):
    from typer.testing import CliRunner

    from benchmark.cli import app

    zoo, mid, _, data = older_card
    run = CliRunner().invoke
    out = run(app, ["zoo", "rescore", "tiny_cnn_*", "--zoo", str(zoo.root), "--data-dir", data])
    assert out.exit_code == 0, out.output
    lines = [x for x in out.output.splitlines() if not x.startswith("INFO")]
    assert lines == [f"rescored: val balanced_acc, test balanced_acc  {mid}"]
    out = run(app, ["zoo", "rescore", "resnet50_*", "--zoo", str(zoo.root)])
    assert out.exit_code == 1 and "no zoo model in" in out.output


def test_other_data_or_a_multilabel_card_is_named_and_nothing_is_written(older_card):
    zoo, mid, _, data = older_card
    path = zoo.folder(mid) / CARD
    card = json.loads(path.read_text())
    card["data"]["val"]["sha256"] = "0" * 64
    path.write_text(json.dumps(card))
    text = path.read_text()
    with pytest.raises(CheckpointError, match=r"is not the one .* was scored on"):
        rescore_card(zoo, mid, data_dir=data)
    assert path.read_text() == text
    card["multi_label"] = True
    path.write_text(json.dumps(card))
    assert rescore_card(zoo, mid, data_dir=data) == "n/a (multi-label: no balanced accuracy)"


def test_the_cli_goes_on_after_a_refused_card_and_exits_non_zero(older_card, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from benchmark.cli import app

    zoo, mid, _, data = older_card
    other = "tiny_cnn_breastmnist_28px_s9"
    shutil.copytree(zoo.folder(mid), zoo.folder(other))
    card = json.loads((zoo.folder(other) / CARD).read_text())
    card["model_id"] = other
    card["metrics"]["test"]["auc"]["value"] = 0.5  # not what its weights give
    (zoo.folder(other) / CARD).write_text(json.dumps(card))
    out = CliRunner().invoke(
        app, ["zoo", "rescore", "tiny_cnn_*", "--zoo", str(zoo.root), "--data-dir", data]
    )
    assert out.exit_code == 1
    assert f"rescored: val balanced_acc, test balanced_acc  {mid}" in out.output
    assert f"refused    {other}: {other}: the recomputed test AUC" in out.output
    assert (
        "balanced_acc" not in json.loads((zoo.folder(other) / CARD).read_text())["metrics"]["test"]
    )
