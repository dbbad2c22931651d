"""The transfer matrix (``bench transfer``): entries re-planned from their results files and
scored on the whole split, sources crafted once and cached, per-image outcomes that an
independent recomputation reproduces, the file's checks, and the site's matrix and column."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import benchmark as mrb
from benchmark.attacks.base import ATTACKS, Attack
from benchmark.errors import CheckpointError, ResultsError
from benchmark.evaluation.transfer_matrix import transfer_matrix, write_transfer
from benchmark.results.diagnostics import results_files
from benchmark.results.outcomes import pack_outcomes
from benchmark.results.transfer import (
    MRB_TRANSFER_V1,
    find_transfer,
    read_transfer,
    transfer_file,
)

S1 = "tiny_cnn_breastmnist_28px_s1"


@pytest.fixture(scope="module")
def entries(tiny_models, shared_data, tmp_path_factory):
    """Four BreastMNIST entries of the tiny CNN (seed 0), each run on 16 images: undefended,
    JPEG, the randomized resize-and-pad scored as the worst of 2 draws, and a PGD-AT robust
    model fine-tuned from it (a training-time defense: its own checkpoint)."""
    from benchmark.training import TrainConfig, train_model

    base = tmp_path_factory.mktemp("transfer")
    zoo = tiny_models["zoo"].root
    results, cache = base / "results", base / "cache"
    train_model(
        TrainConfig(
            dataset="breastmnist",
            arch="tiny_cnn",
            epochs=1,
            defense="pgd_at",
            defense_params={"steps": 1},
            init_from="tiny_cnn_breastmnist_28px_s0",
        ),
        data_dir=shared_data,
        zoo=tiny_models["zoo"],
        progress=False,
    )
    runs = (
        (None, {}),
        ("jpeg", {}),
        ("random_resize_pad", {"draws": 2}),
        ("pgd_at", {"defense_params": ["steps=1"]}),
    )
    for defense, extra in runs:
        mrb.evaluate(
            "breastmnist",
            "tiny_cnn",
            attacks="fgsm",
            eps=["8/255"],
            n_examples=16,
            defense=defense,
            data_dir=shared_data,
            zoo=zoo,
            out_dir=results,
            cache_dir=cache,
            sanity_attack=False,
            **extra,
        )
    return {"zoo": zoo, "results": results, "cache": cache, "data": shared_data, "base": base}


@pytest.fixture(scope="module")
def matrix(entries):
    doc = transfer_matrix(
        "breastmnist",
        results_root=entries["results"],
        sources=[S1],
        zoo=entries["zoo"],
        data_dir=entries["data"],
        cache_dir=entries["cache"],
        device="cpu",
    )
    target = transfer_file(entries["results"], "breastmnist", MRB_TRANSFER_V1, doc["created_at"])
    path = write_transfer(doc, target)
    return doc, path


def _cell(doc, source_id, target_key_part):
    s = next(i for i, s in enumerate(doc["sources"]) if s["id"] == source_id)
    t = next(i for i, t in enumerate(doc["targets"]) if target_key_part(t))
    return next(c for c in doc["cells"] if (c["source"], c["target"]) == (s, t))


def test_every_entry_is_scored_on_the_whole_split_against_every_source(matrix):
    doc, path = matrix
    assert doc["data"]["n"] == doc["data"]["n_split"] == 156  # the runs scored 16
    robust = "tiny_cnn_breastmnist_28px_s0_pgd_at_steps=1"
    assert sorted(s["id"] for s in doc["sources"]) == sorted(
        ["tiny_cnn_breastmnist_28px_s0", robust, S1]
    )
    src = {s["id"]: s for s in doc["sources"]}
    assert src[robust]["defense"] == {"id": "pgd_at", "params": {"steps": 1}}
    labels = sorted(t["label"] for t in doc["targets"])
    assert labels == ["jpeg", "none", "none", "pgd_at (steps=1)", "random_resize_pad"]
    assert len(doc["cells"]) == 3 * 5
    randomized = next(t for t in doc["targets"] if t["label"] == "random_resize_pad")
    assert randomized["draws"] == 2 and randomized["defense"]["randomized"] is True
    # Own checkpoint, by hand: the three seed-0 pipelines (undefended, JPEG, resize-and-pad)
    # against the seed-0 source, the robust entry against the robust source, the bare s1
    # model against the s1 source. The robust entry against the seed-0 base is a transfer.
    own = {
        (doc["sources"][c["source"]]["id"], doc["targets"][c["target"]]["label"])
        for c in doc["cells"]
        if c["own"]
    }
    s0 = "tiny_cnn_breastmnist_28px_s0"
    assert own == {
        (s0, "none"),
        (s0, "jpeg"),
        (s0, "random_resize_pad"),
        (robust, "pgd_at (steps=1)"),
        (S1, "none"),
    }
    assert len([c for c in doc["cells"] if c["own"]]) == 5  # the s1 "none" is its own row
    m = read_transfer(path)
    assert m.n == 156 and len(m.cells) == 15
    worst, source = m.worst_transfer(next(t["key"] for t in m.targets if "pgd_at" in t["key"]))
    assert source["id"] in (s0, S1) and not worst.own


def test_a_cell_matches_an_independent_recomputation(matrix, entries, tiny_models):
    """MI-FGSM has no randomness: crafting it on the s1 model batch by batch and scoring the
    bare s0 model by hand gives the cell's per-image outcomes."""
    doc, _ = matrix
    zoo = tiny_models["zoo"]
    s1, _ = zoo.load(S1)
    s0, _ = zoo.load("tiny_cnn_breastmnist_28px_s0")
    split = mrb.load_dataset("breastmnist", data_dir=entries["data"])
    attack = ATTACKS.get("mifgsm")(s1, eps=8 / 255, steps=10, decay=1.0)
    correct = []
    for x, y in split.batches(128):
        with torch.no_grad():
            correct.append(s0(attack(x, y)).argmax(1) == y)
    hand = torch.cat(correct).numpy()
    cell = _cell(doc, S1, lambda t: t["label"] == "none" and "_s0@" in t["key"])
    assert cell["own"] is False
    assert cell["per_attack"]["mifgsm"]["outcomes"]["correct"] == pack_outcomes(hand)
    assert cell["per_attack"]["mifgsm"]["accuracy"]["value"] == pytest.approx(hand.mean())
    m = read_transfer(matrix[1])
    worst = m.cell(cell["source"], cell["target"])
    clean = m.targets[cell["target"]]["clean"]["accuracy"]["value"]
    assert worst.accuracy <= min(clean, hand.mean())


def test_a_second_run_reuses_every_crafted_example(matrix, entries, monkeypatch):
    calls: list[int] = []
    original = Attack.__call__

    def counting(self, x, y, **kw):
        calls.append(len(x))
        return original(self, x, y, **kw)

    monkeypatch.setattr(Attack, "__call__", counting)
    # The randomized entry is scored as the worst of its run's 2 draws: each scoring is two
    # passes of its pipeline (clean, then every source's two attacks).
    import benchmark.evaluation.draws as draws

    passes: list[str] = []
    original_predict = draws.predict_images

    def counting_predict(model, *args, **kw):
        defense = getattr(model, "defense", None)
        passes.append(defense.meta.name if defense is not None else "")
        return original_predict(model, *args, **kw)

    monkeypatch.setattr(draws, "predict_images", counting_predict)
    again = transfer_matrix(
        "breastmnist",
        results_root=entries["results"],
        sources=[S1],
        zoo=entries["zoo"],
        data_dir=entries["data"],
        cache_dir=entries["cache"],
        device="cpu",
    )
    assert calls == []
    assert again["cells"] == matrix[0]["cells"]
    randomized = [p for p in passes if p and "resize" in p.lower()]
    assert len(randomized) == 2 * (1 + len(again["sources"]) * 2)


def test_the_file_is_checked_and_walkers_skip_it(matrix, tmp_path, entries):
    path = matrix[1]
    assert path not in results_files(entries["results"])
    bad = json.loads(path.read_text())
    outcomes = bad["cells"][0]["worst"]["outcomes"]
    flipped = ~read_transfer(path).cells[0].correct
    outcomes["correct"] = pack_outcomes(flipped)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ResultsError, match="not the mean of its outcomes"):
        read_transfer(tmp_path / "bad.json")
    # Outcomes and accuracy changed together: the worst case no longer follows from the
    # target's clean outcomes and the attacks'.
    bad = json.loads(path.read_text())
    cell = next(c for c in bad["cells"] if c["worst"]["accuracy"]["value"] > 0)
    flipped = read_transfer(path).cell(cell["source"], cell["target"]).correct.copy()
    flipped[np.argmax(flipped)] = False
    cell["worst"]["outcomes"]["correct"] = pack_outcomes(flipped)
    cell["worst"]["accuracy"]["value"] = float(flipped.mean())
    _refused(tmp_path, bad, "AND those of every attack")
    hostile = [
        (lambda d: d.update(protocol="mrb_transfer_v1"), "not a registered transfer protocol"),
        (lambda d: d["protocol"].update(sha256="0" * 64), "not a registered transfer protocol"),
        (lambda d: d["cells"][0].update(per_attack={}), "not the protocol's"),
        (lambda d: d["cells"][0].update(own=not d["cells"][0]["own"]), "the checkpoints say"),
        (lambda d: d["cells"].pop(), "cells for 3 sources x 5 targets"),
        (lambda d: d["targets"][0].update(draws="2"), "draws is missing or of the wrong type"),
        (lambda d: d["sources"][0].pop("id"), "source 0 id"),
        (lambda d: d["cells"][0].update(source="0"), "source is missing or of the wrong type"),
        (lambda d: d.pop("cost"), "cost is missing"),
        (lambda d: d["targets"][1]["clean"]["accuracy"].update(value="1"), "accuracy value"),
    ]
    for spoil, message in hostile:
        bad = json.loads(path.read_text())
        spoil(bad)
        _refused(tmp_path, bad, message)


def _refused(tmp_path, doc, message):
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match=message):
        read_transfer(tmp_path / "bad.json")


def test_the_site_leaves_out_a_malformed_matrix(matrix, entries, tmp_path):
    from benchmark.leaderboard import build_site

    results = tmp_path / "results"
    shutil.copytree(entries["results"], results)
    path = results / matrix[1].relative_to(entries["results"])
    bad = json.loads(path.read_text())
    bad["targets"][0]["label"] = None
    path.write_text(json.dumps(bad))
    site = build_site(results, tmp_path / "site", data_cards=_cards(tmp_path))
    assert 'id="transfer"' not in (site.out / "dataset-breastmnist.html").read_text()
    assert not (site.out / "raw" / "breastmnist" / "transfer").exists()


def test_a_missing_checkpoint_is_refused_or_left_out(entries, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(entries["results"], results)
    path = next(p for p in results_files(results) if "jpeg" in p.as_posix())
    doc = json.loads(path.read_text())
    doc["model"]["checkpoint_sha256"] = "f" * 64
    path.write_text(json.dumps(doc))
    kwargs = dict(
        results_root=results,
        zoo=entries["zoo"],
        data_dir=entries["data"],
        cache_dir=entries["cache"],
        device="cpu",
        targets=["*/jpeg*"],
    )
    with pytest.raises(CheckpointError, match="import that checkpoint"):
        transfer_matrix("breastmnist", **kwargs)
    # Entries left out by --target are listed as such.
    kwargs["targets"] = ["*/random_resize_pad*"]
    doc = transfer_matrix("breastmnist", skip_missing=True, **kwargs)
    reasons = sorted(x["reason"].split(" (")[0] for x in doc["left_out"])
    assert reasons == ["not selected in this run"] * 3 and len(doc["targets"]) == 1
    kwargs["targets"] = ["*"]
    doc = transfer_matrix("breastmnist", skip_missing=True, **kwargs)
    assert [x["key"].split("/")[-1] for x in doc["left_out"]] == ["jpeg"]
    assert len(doc["targets"]) == 3 and np.isfinite(doc["cost"]["total_seconds"])


def test_the_site_shows_the_matrix_and_the_board_column(matrix, entries, tmp_path):
    from benchmark.leaderboard import build_site

    site = build_site(entries["results"], tmp_path / "site", data_cards=_cards(tmp_path))
    page = (site.out / "dataset-breastmnist.html").read_text()
    assert 'id="transfer"' in page and "mrb_transfer_v1" in page
    m = read_transfer(matrix[1])
    assert page.count("<small>own</small>") == sum(c.own for c in m.cells)
    raw = site.out / "raw" / matrix[1].relative_to(entries["results"])
    assert raw.read_bytes() == matrix[1].read_bytes()
    board = (site.out / "board-breastmnist--linf-8-255.html").read_text()
    assert "transfer: 95 % interval, n, source" in board
    # The JPEG row's transfer figure is the lowest of its non-own cells (the s1 model's and
    # the robust model's), named with its source.
    key = next(t["key"] for t in m.targets if t["label"] == "jpeg")
    j = next(i for i, t in enumerate(m.targets) if t["key"] == key)
    others = [c for c in m.cells if c.target == j and not c.own]
    assert len(others) == 2
    worst, source = m.worst_transfer(key)
    assert worst.accuracy == min(c.accuracy for c in others)
    label = f"{source['id']} (undefended)" if source["defense"] is None else source["id"]
    assert f"{100 * worst.accuracy:.1f}</td><td>" in board and f"from {label}" in board


def _cards(tmp_path):
    from pathlib import Path

    cards = tmp_path / "cards"
    cards.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "data_cards" / "breastmnist.md", cards)
    return cards


def test_a_matrix_is_published_in_the_ledger_and_never_overwritten(matrix, entries, tmp_path):
    from benchmark.errors import LedgerError
    from benchmark.leaderboard import build_site
    from benchmark.leaderboard.ledger import init_ledger, published_files, verify_ledger
    from benchmark.leaderboard.publish import add_result

    results = tmp_path / "results"
    shutil.copytree(entries["results"], results)
    init_ledger(results)
    rel = matrix[1].relative_to(entries["results"]).as_posix()
    assert rel in published_files(results) and verify_ledger(results) == []
    # A recomputed matrix is a new file beside the first, published with bench leaderboard add.
    doc = json.loads(matrix[1].read_text())
    doc.update(created_at="2030-01-01T00:00:00Z", git={"commit": "a" * 40, "dirty": False})
    (tmp_path / "new.json").write_text(json.dumps(doc))
    target, added = add_result(tmp_path / "new.json", results)
    assert added and target.name == "mrb_transfer_v1_20300101t000000z.json"
    assert len(find_transfer(results, "breastmnist")) == 2 and verify_ledger(results) == []
    assert add_result(tmp_path / "new.json", results) == (target, False)
    # The site shows the newest, and keeps both in raw/.
    site = build_site(results, tmp_path / "site", data_cards=_cards(tmp_path))
    assert "Computed 2030-01-01T00:00:00Z" in (site.out / "dataset-breastmnist.html").read_text()
    assert (site.out / "raw" / rel).is_file()
    # Uncommitted code is refused; a tampered matrix stops the build.
    doc["git"]["dirty"] = True
    (tmp_path / "dirty.json").write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match="uncommitted code"):
        add_result(tmp_path / "dirty.json", results)
    (results / rel).write_text((results / rel).read_text().replace('"n": 156', '"n":  156', 1))
    assert any("changed after publication" in p for p in verify_ledger(results))
    with pytest.raises(LedgerError):
        build_site(results, tmp_path / "site2", data_cards=tmp_path / "cards")


def test_a_generated_block_renders_the_matrix(matrix, entries):
    from benchmark.reports.blocks import read_any, update_generated_blocks

    page = (
        "<!-- bench:results transfer breastmnist/transfer/*.json -->\nold\n<!-- /bench:results -->"
    )
    text, n = update_generated_blocks(page, entries["results"], read_any)
    m = read_transfer(matrix[1])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert n == 1 and len(rows) == 1 + len(m.targets)  # the head, then one row per target
    assert sum(line.count("*") for line in rows) == sum(c.own for c in m.cells)
    key = next(t["key"] for t in m.targets if t["label"] == "jpeg")
    worst, _ = m.worst_transfer(key)
    jpeg = next(line for line in rows if line.startswith("| jpeg "))
    assert jpeg.rstrip(" |").endswith(f"{100 * worst.accuracy:.1f}")


def test_a_robust_zoo_model_named_as_a_source_takes_its_board_entrys_key(matrix, entries):
    from benchmark.results.view import RunView

    robust = "tiny_cnn_breastmnist_28px_s0_pgd_at_steps=1"
    doc = transfer_matrix(
        "breastmnist",
        results_root=entries["results"],
        sources=[robust],
        targets=["*/jpeg*"],
        zoo=entries["zoo"],
        data_dir=entries["data"],
        cache_dir=entries["cache"],
        device="cpu",
    )
    run = next(
        RunView(json.loads(p.read_text()))
        for p in results_files(entries["results"])
        if "pgd_at" in p.as_posix()
    )
    bare = next(t for t in doc["targets"] if t["result"] is None)
    assert bare["key"] == run.entry_key and bare["label"] == "pgd_at (steps=1)"
    assert bare["defense"]["kind"] == "training"
    source = next(s for s in doc["sources"] if s["id"] == robust)
    assert source["defense"] == {"id": "pgd_at", "params": {"steps": 1}}
