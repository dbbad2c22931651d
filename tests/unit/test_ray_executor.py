"""The Ray executor: a real local Ray (started by the test) crafts the attack passes; the
evaluation then gives the same metrics as a local run, and a second run does no attack work."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.attacks.presets import AttackCell
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache

ROOT = Path(__file__).resolve().parents[2]


def _strip(doc: dict) -> list:
    """What must not depend on where the work ran: every cell's metrics and the worst case."""
    return [
        [(a["cell_id"], a.get("threat_model"), a["metrics"]) for a in doc["attacks"]],
        doc["worst_case"],
        doc["metrics"]["clean"],
    ]


def test_ray_executor_gives_the_local_metrics(tiny_models, shared_data, tmp_path):
    ray = pytest.importorskip("ray")
    from benchmark.evaluation.executors import RayExecutor

    config = EvaluationConfig(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=[AttackCell.make("fgsm", "8/255"), AttackCell.make("pgd", "8/255", steps=3)],
        suite="custom",
        n_examples=24,
        sanity_attack=False,
        defense=str(ROOT / "submissions" / "random_resize_pad"),
        threat_models=["oblivious", "adaptive"],
        eot_samples=2,
    )
    zoo = tiny_models["zoo"]
    local, _ = evaluate(
        config, data_dir=shared_data, zoo=zoo, cache=AdversarialCache(tmp_path / "l")
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(num_cpus=1)
        cache = AdversarialCache(tmp_path / "r")
        remote, _ = evaluate(config, data_dir=shared_data, zoo=zoo, cache=cache, executor=executor)
        assert remote["timing"]["cache_misses"] == 0  # every pass was crafted by a Ray task
        assert remote["timing"]["cache_hits"] == 4
        assert _strip(remote) == _strip(local)
        again, _ = evaluate(
            config,
            data_dir=shared_data,
            zoo=zoo,
            cache=AdversarialCache(tmp_path / "r"),
            executor=executor,
        )
        assert again["timing"]["cache_misses"] == 0 and _strip(again) == _strip(local)
    finally:
        ray.shutdown()
