"""What a campaign on a lent GPU brings back (``benchmarks/protocol_campaign.py``): the cards
of the models it trained, inside the results archive, and as many of the models themselves as
fit the machine's file limits, in parts that import here with every sha256 checked."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import benchmark.evaluation.plan  # noqa: F401  (see below)
from benchmark.hashing import file_digest
from benchmark.models.distribution import import_models
from benchmark.models.zoo import ModelZoo
from benchmark.results.parts import part_files

ROOT = Path(__file__).resolve().parents[2]
MID = "tiny_cnn_breastmnist_28px_s0"
# The tests patch ``benchmark.training.train_model``; the campaign imports
# ``benchmark.evaluation.plan``, which binds ``train_model`` by name at its import. Imported
# here first, it keeps the real one, so the patch does not outlive these tests (it did when
# this module ran before any other imported the plan: a later CLI test trained with the fake).


def _fake_training(source: ModelZoo, calls: list[str]):
    """``train_model`` that installs the fixture's model of the recipe's id (no training),
    its card saying it was trained with the recipe."""
    from benchmark.training.card import recipe
    from benchmark.training.recipes import card_recipe_mismatches, recipe_model_id

    def train(config, *, data_dir, zoo, progress):
        mid = recipe_model_id(config)
        calls.append(mid)
        shutil.copytree(source.folder(mid), zoo.folder(mid))
        card = json.loads((zoo.folder(mid) / "card.json").read_text())
        milestones = card["recipe"]["milestones_epochs"]
        card["recipe"] = recipe(config, 28, milestones, None, False, None)
        assert card_recipe_mismatches(card) == []
        (zoo.folder(mid) / "card.json").write_text(json.dumps(card))
        return zoo.entry(mid)

    return train


def _argv(out: Path, zoo: Path, models: Path, dataset: str, size: int) -> list[str]:
    return [
        "--out", str(out), "--zoo", str(zoo), "--cache", str(out / "cache"),
        "--datasets", dataset, "--arch", "tiny_cnn", "--seeds", "0",
        "--tracks", "deterministic,transfer",
        "--only", f"{dataset}__undefended,{dataset}__transfer",
        "--train-only", "--models-out", str(models),
        "--bring-mib", str(1.5 * size / 2**20), "--part-mib", str(size / 3 / 2**20),
    ]  # fmt: skip


def test_a_train_only_campaign_brings_back_cards_and_models_in_parts(
    campaign, tiny_models, tmp_path, monkeypatch
):
    import benchmark.training as training

    calls: list[str] = []
    monkeypatch.setattr(training, "train_model", _fake_training(tiny_models["zoo"], calls))
    size = sum(
        (tiny_models["zoo"].folder(MID) / f).stat().st_size for f in ("card.json", "model.pt")
    )
    out, zoo = tmp_path / "camp", tmp_path / "zoo"
    argv = _argv(out, zoo, tmp_path / "OUT1", "breastmnist", size)
    campaign.main(argv)
    assert calls == [MID]
    log = json.loads((out / "campaign.json").read_text())
    # Only the training job ran: a transfer job is left out when only training.
    assert [(r["job"], r["status"]) for r in log["jobs"]] == [
        ("breastmnist__undefended", "trained")
    ]
    assert log["trained"] == [MID] and log["brought_back"] == [MID] and log["errors"] == []
    with tarfile.open(out / "results.tar.gz") as tar:
        card = json.loads(tar.extractfile(f"cards/{MID}.json").read())  # type: ignore[union-attr]
    assert card == json.loads((zoo / MID / "card.json").read_text())
    parts = part_files(tmp_path / "OUT1" / "models.tar.gz")
    assert len(parts) >= 3 and all(p.stat().st_size <= size / 3 for p in parts)
    (entry,) = import_models(
        tmp_path / "OUT1" / "models.tar.gz.parts.json", ModelZoo(tmp_path / "a")
    )
    assert file_digest(entry.checkpoint) == card["checkpoint"]["sha256"]
    # Again: nothing to train, no record added, nothing brought back twice.
    campaign.main(argv)
    assert calls == [MID] and len(json.loads((out / "campaign.json").read_text())["jobs"]) == 1
    # The next call (a fresh $OUT) brings back what it trained, not the first call's model,
    # which would fill the budget again.
    other = "tiny_cnn_retinamnist_28px_s0"
    campaign.main(_argv(out, zoo, tmp_path / "OUT2", "retinamnist", size))
    log = json.loads((out / "campaign.json").read_text())
    assert log["trained"] == [MID, other] and log["brought_back"] == [MID, other]
    (entry,) = import_models(tmp_path / "OUT2" / "models.tar.gz", ModelZoo(tmp_path / "b"))
    assert entry.model_id == other
    with tarfile.open(out / "results.tar.gz") as tar:
        assert {f"cards/{MID}.json", f"cards/{other}.json"} <= set(tar.getnames())


def test_a_failed_export_is_logged_and_the_results_and_cards_still_come_back(
    campaign, tiny_models, tmp_path, monkeypatch
):
    import benchmark.models.distribution as distribution
    import benchmark.training as training

    monkeypatch.setattr(training, "train_model", _fake_training(tiny_models["zoo"], []))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(distribution, "export_models", broken)
    out = tmp_path / "camp"
    campaign.main(_argv(out, tmp_path / "zoo", tmp_path / "OUT", "breastmnist", 10**6))
    log = json.loads((out / "campaign.json").read_text())
    assert log["trained"] == [MID] and log["brought_back"] == []
    assert log["errors"] == ["bring back: OSError: disk full"]
    with tarfile.open(out / "results.tar.gz") as tar:
        assert f"cards/{MID}.json" in tar.getnames()


def test_a_model_is_logged_the_moment_it_is_trained(campaign, tmp_path):
    import campaign_log

    log = campaign_log.CampaignLog(tmp_path)
    log.note_trained("m1")  # a call killed now, before its job's record, still reports m1
    again = campaign_log.CampaignLog(tmp_path)
    assert again.trained == ["m1"] and again.pending() == ["m1"] and again.jobs == []


def test_bring_back_skips_a_model_over_the_budget(campaign, tiny_models, tmp_path):
    import campaign_log

    zoo = tiny_models["zoo"]
    ids = ["tiny_cnn_breastmnist_28px_s0", "tiny_cnn_retinamnist_28px_s0"]
    one = sum((zoo.folder(ids[0]) / f).stat().st_size for f in ("card.json", "model.pt"))
    assert campaign_log.bring_back(zoo, ids, tmp_path, one, 10 * one) == ids[:1]
    assert (tmp_path / "models.tar.gz").is_file()  # one part: written whole
    assert campaign_log.bring_back(zoo, ids, tmp_path / "none", one // 2, one) == []
    assert not (tmp_path / "none").exists()


def test_a_call_brings_back_robust_models_first_and_never_drops_one(
    campaign, tiny_models, tmp_path
):
    import argparse

    import campaign_log

    zoo = ModelZoo(tmp_path / "zoo")
    ids = ["tiny_cnn_breastmnist_28px_s0", "tiny_cnn_breastmnist_28px_s1"]
    for mid in [*ids, "tiny_cnn_retinamnist_28px_s0"]:
        shutil.copytree(tiny_models["zoo"].folder(mid), zoo.folder(mid))
    card = json.loads((zoo.folder(ids[1]) / "card.json").read_text())
    card["defense"] = {"id": "pgd_at", "params": {}}  # as a fine-tuned model's card says
    (zoo.folder(ids[1]) / "card.json").write_text(json.dumps(card))
    one = max(
        sum((zoo.folder(m) / f).stat().st_size for f in ("card.json", "model.pt")) for m in ids
    )
    args = argparse.Namespace(models_out=tmp_path / "OUT", bring_mib=1.5 * one / 2**20, part_mib=1)
    log = campaign_log.CampaignLog(tmp_path)
    for mid in ids:  # the standard model first, then the model fine-tuned from it
        log.note_trained(mid)
    campaign_log.bring_back_now(log, zoo, args)
    assert log.brought_back == [ids[1]]  # room for one: the robust model
    log.note_trained("tiny_cnn_retinamnist_28px_s0")
    campaign_log.bring_back_now(log, zoo, args)
    assert log.brought_back == [ids[1]]  # the export is rewritten, and keeps what it held
    (entry,) = import_models(tmp_path / "OUT" / "models.tar.gz", ModelZoo(tmp_path / "here"))
    assert entry.model_id == ids[1]
