"""What a campaign on a lent GPU brings back (``benchmarks/protocol_campaign.py``): the cards
of the models it trained, inside the results archive, and as many of the models themselves as
fit the machine's file limits, in parts that import here with every sha256 checked."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

from benchmark.hashing import file_digest
from benchmark.models.distribution import import_models
from benchmark.models.zoo import ModelZoo

ROOT = Path(__file__).resolve().parents[2]
MID = "tiny_cnn_breastmnist_28px_s0"


def _campaign() -> Any:
    path = ROOT / "benchmarks" / "protocol_campaign.py"
    spec = importlib.util.spec_from_file_location("protocol_campaign", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["protocol_campaign"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


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


def test_a_train_only_campaign_brings_back_cards_and_models_in_parts(
    tiny_models, tmp_path, monkeypatch
):
    import benchmark.training as training

    camp = _campaign()
    calls: list[str] = []
    monkeypatch.setattr(training, "train_model", _fake_training(tiny_models["zoo"], calls))
    size = sum(
        (tiny_models["zoo"].folder(MID) / f).stat().st_size for f in ("card.json", "model.pt")
    )
    out, models, zoo = tmp_path / "camp", tmp_path / "OUT", tmp_path / "zoo"
    argv = [
        "--out", str(out), "--zoo", str(zoo), "--cache", str(tmp_path / "cache"),
        "--datasets", "breastmnist", "--arch", "tiny_cnn", "--seeds", "0",
        "--tracks", "deterministic,transfer",
        "--only", "breastmnist__undefended,breastmnist__transfer",
        "--train-only", "--models-out", str(models),
        "--bring-mib", str(2 * size / 2**20), "--part-mib", str(size / 3 / 2**20),
    ]  # fmt: skip
    camp.main(argv)
    assert calls == [MID]  # the transfer job is not run when only training
    log = json.loads((out / "campaign.json").read_text())["jobs"]
    assert [(r["job"], r["status"], r["brought_back"]) for r in log] == [
        ("breastmnist__undefended", "trained", [MID])
    ]
    with tarfile.open(out / "results.tar.gz") as tar:
        card = json.loads(tar.extractfile(f"cards/{MID}.json").read())  # type: ignore[union-attr]
    assert card == json.loads((zoo / MID / "card.json").read_text())
    parts = sorted(p.name for p in models.iterdir())
    assert parts[-1] == "models.tar.gz.parts.json" and len(parts) >= 4  # 3+ parts, the manifest
    assert all((models / p).stat().st_size <= size / 3 for p in parts[:-1])
    (entry,) = import_models(models / "models.tar.gz.parts.json", ModelZoo(tmp_path / "here"))
    assert file_digest(entry.checkpoint) == card["checkpoint"]["sha256"]
    # A second call trains nothing and adds no record: the model is in the zoo.
    camp.main(argv)
    assert calls == [MID] and len(json.loads((out / "campaign.json").read_text())["jobs"]) == 1


def test_bring_back_skips_a_model_over_the_budget(tiny_models, tmp_path):
    camp = _campaign()
    zoo = tiny_models["zoo"]
    ids = ["tiny_cnn_breastmnist_28px_s0", "tiny_cnn_retinamnist_28px_s0"]
    one = sum((zoo.folder(ids[0]) / f).stat().st_size for f in ("card.json", "model.pt"))
    assert camp.bring_back(zoo, ids, tmp_path, one, 10 * one) == ids[:1]
    assert (tmp_path / "models.tar.gz").is_file()  # one part: written whole
    assert camp.bring_back(zoo, ids, tmp_path / "none", one // 2, one) == []
    assert not (tmp_path / "none").exists()
