"""Adversarial-example caching and resume of interrupted runs, through the public API."""

from __future__ import annotations

import pytest

from benchmark.attacks.presets import AttackCell
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache

CELLS = [
    AttackCell.make("fgsm", "4/255"),
    AttackCell.make("pgd", "4/255", steps=3),
    AttackCell.make("fgnm", "4/255"),
]


def _config(**kw):
    base = dict(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=list(CELLS),
        suite="custom",
        n_examples=40,
        sanity_attack=False,
    )
    base.update(kw)
    return EvaluationConfig(**base)


def test_second_run_does_no_attack_work_and_gives_the_same_numbers(
    tiny_models, shared_data, tmp_path
):
    cache = AdversarialCache(tmp_path / "cache")
    doc1, _ = evaluate(_config(), data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache)
    assert doc1["timing"]["cache_misses"] == 3 and doc1["timing"]["cache_hits"] == 0
    cache2 = AdversarialCache(tmp_path / "cache")
    doc2, _ = evaluate(_config(), data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache2)
    assert doc2["timing"]["cache_hits"] == 3 and doc2["timing"]["cache_misses"] == 0
    assert all(a["timing"]["cached"] for a in doc2["attacks"])
    assert [a["metrics"] for a in doc1["attacks"]] == [a["metrics"] for a in doc2["attacks"]]
    assert doc1["data"]["subset"]["indices"] == doc2["data"]["subset"]["indices"]
    assert len(doc1["data"]["subset"]["indices"]) == 40


def test_changed_config_misses_and_corrupt_file_is_recomputed(tiny_models, shared_data, tmp_path):
    cache = AdversarialCache(tmp_path / "cache")
    evaluate(_config(), data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache)
    files = sorted((tmp_path / "cache").rglob("*.pt"))
    assert len(files) == 3
    files[0].write_bytes(b"not a tensor file")
    again = AdversarialCache(tmp_path / "cache")
    doc, _ = evaluate(_config(seed=0), data_dir=shared_data, zoo=tiny_models["zoo"], cache=again)
    assert doc["timing"]["cache_hits"] == 2 and doc["timing"]["cache_misses"] == 1
    other = AdversarialCache(tmp_path / "cache")
    evaluate(_config(n_examples=30), data_dir=shared_data, zoo=tiny_models["zoo"], cache=other)
    assert other.hits == 0  # another subset is another key


def test_subset_seed_picks_the_images_and_is_recorded(tiny_models, shared_data, tmp_path):
    """``--subset-seed`` decouples the images from ``--seed``: the same subset seed gives the
    same images (and cache keys) whatever the run's seed, another gives other images."""
    from benchmark.evaluation.plan import select_subset

    cache = AdversarialCache(tmp_path / "cache")
    base, _ = evaluate(_config(), data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache)
    same = AdversarialCache(tmp_path / "cache")
    doc, _ = evaluate(
        _config(subset_seed=0), data_dir=shared_data, zoo=tiny_models["zoo"], cache=same
    )
    assert doc["data"]["subset"]["indices"] == base["data"]["subset"]["indices"]
    assert same.hits == 3 and doc["config"]["subset_seed"] == 0
    other = AdversarialCache(tmp_path / "cache")
    doc7, _ = evaluate(
        _config(subset_seed=7), data_dir=shared_data, zoo=tiny_models["zoo"], cache=other
    )
    n = doc7["data"]["n_split"]
    assert doc7["data"]["subset"]["seed"] == 7 and doc7["config"]["seed"] == 0
    assert doc7["data"]["subset"]["indices"] == select_subset(n, 40, 7).tolist()
    assert doc7["data"]["subset"]["indices"] != base["data"]["subset"]["indices"]
    assert other.hits == 0
    # A rebuilt run (bench diagnose, replays) takes the same images from the file.
    from benchmark.evaluation.replay import config_from_result

    again = config_from_result(doc7, "cpu")
    assert again.subset_seed == 7 and again.images_seed == 7 and again.seed == 0


def test_interrupted_run_resumes_from_finished_cells(
    tiny_models, shared_data, tmp_path, monkeypatch, isolated_dirs
):
    import benchmark.evaluation.runner as runner

    real_run_cell = runner.run_cell
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_run_cell(*args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            _config(),
            data_dir=shared_data,
            zoo=tiny_models["zoo"],
            cache=AdversarialCache(tmp_path / "cache"),
        )
    assert not list((isolated_dirs / "results").rglob("*.json"))  # nothing half-written
    monkeypatch.setattr(runner, "run_cell", real_run_cell)
    cache = AdversarialCache(tmp_path / "cache")
    doc, path = evaluate(_config(), data_dir=shared_data, zoo=tiny_models["zoo"], cache=cache)
    assert [a["timing"]["cached"] for a in doc["attacks"]] == [True, True, False]
    assert path.is_file()


class _Interrupted(Exception):
    pass


class _CountingAttack:
    """The real attack behind a counter that can interrupt the n-th batch (fault injection)."""

    def __init__(self, attack, fail_at: int | None = None) -> None:
        self.attack, self.fail_at, self.batches = attack, fail_at, 0

    def __getattr__(self, name):
        return getattr(self.attack, name)

    def __call__(self, x, y, **kw):
        self.batches += 1
        if self.batches == self.fail_at:
            raise _Interrupted
        return self.attack(x, y, **kw)


def test_an_interrupted_cell_resumes_at_its_next_batch(tiny_models, shared_data, tmp_path):
    """Batches finished before an interruption are kept; the resumed cell computes only the
    rest and equals an uninterrupted one (each batch has its own seed)."""
    import torch

    from benchmark.attacks import ATTACKS
    from benchmark.datasets.base import load_split
    from benchmark.evaluation.adversarial import EarlierCost, craft_cell

    model = tiny_models["breastmnist"]
    split = load_split("breastmnist", "test", data_dir=shared_data)
    cell = AttackCell.make("pgd", "4/255", steps=3)

    def craft(cache, attack, earlier=None):
        return craft_cell(
            model,
            split,
            cell,
            attack,
            indices=torch.arange(len(split)),
            model_sha256="m",
            seed=0,
            batch_size=32,
            cache=cache,
            earlier=earlier,
        )

    def attack(fail_at=None):
        real = ATTACKS.get("pgd")(model, eps=cell.eps, seed=0, **cell.param_dict)
        return _CountingAttack(real, fail_at)

    whole, _ = craft(AdversarialCache(tmp_path / "whole"), attack())
    with pytest.raises(_Interrupted):  # 156 images in 5 batches; the fourth is interrupted
        craft(AdversarialCache(tmp_path / "cache"), attack(fail_at=4))
    assert len(list((tmp_path / "cache").rglob("*.partial/*.pt"))) == 3
    again = attack()
    earlier = EarlierCost()
    resumed, cached = craft(AdversarialCache(tmp_path / "cache"), again, earlier)
    assert not cached and again.batches == 2  # only the two unfinished batches
    assert torch.equal(resumed, whole)
    # The three finished batches were kept with what they cost: the resumed cell's timing
    # counts it (results: seconds include it, resumed_batches says so).
    assert earlier.batches == 3 and earlier.seconds > 0 and earlier.unknown == 0
    assert earlier.timing() == {"resumed_batches": 3}
    assert EarlierCost(batches=2, unknown=1).timing() == {
        "resumed_batches": 2,
        "resumed_batches_without_cost": 1,
    }
    assert not list((tmp_path / "cache").rglob("*.partial"))  # gone once the cell is stored
