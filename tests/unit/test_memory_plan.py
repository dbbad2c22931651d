"""The attack passes' memory, estimated before any work: the probe's accounting, the batch
size "auto" resolves to, and the refusal of a batch that would not fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.attacks.presets import AttackCell
from benchmark.defenses import DefendedModel, read_submission
from benchmark.errors import ConfigError
from benchmark.evaluation import EvaluationConfig, evaluate
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.memory import (
    COMPACT,
    FRAGMENTED,
    HEADROOM,
    fitting_batch,
    graph_bytes_per_image,
    plan_bytes,
)


class _Exp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(2.0 * x).flatten(1)  # exp saves its result, which is the output


def test_probe_counts_saved_tensors_once_and_not_the_weights():
    x = torch.rand(4, 3, 5, 5)
    # exp's saved result and the output share one storage: 75 floats per image
    assert graph_bytes_per_image(_Exp(), x) == 75 * 4
    # a linear layer saves its input (the attack's own tensor) and its weight (the model's):
    # only the output, 3 floats per image, is the graph's
    assert graph_bytes_per_image(nn.Linear(10, 3), torch.rand(2, 10)) == 3 * 4
    deep = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 3))
    # ReLU saves its output (50 floats), which the second linear saves too; plus the logits
    assert graph_bytes_per_image(deep, torch.rand(2, 10)) == (50 + 3) * 4


def test_probe_leaves_the_defense_and_global_streams_as_they_were(tiny_models):
    model = tiny_models["breastmnist"]
    sub = read_submission("submissions/random_resize_pad")
    x = torch.rand(3, 1, 28, 28)

    def draws(probe: bool) -> torch.Tensor:
        torch.manual_seed(5)
        defended = DefendedModel(model, sub.build(seed=3))
        defended(x)  # a stream in use before the probe
        if probe:
            graph_bytes_per_image(defended, x)
        return torch.cat([defended(x).detach(), torch.rand(2, 2)])

    assert torch.equal(draws(True), draws(False))


def test_fitting_batch_halves_until_the_plan_fits():
    per_image = 10 * 2**20
    free = int(plan_bytes(per_image, 64) / HEADROOM) + 1
    assert fitting_batch(per_image, free) == 64
    assert fitting_batch(per_image, 2 * free) == 128
    assert fitting_batch(per_image, 1) == 1
    assert plan_bytes(per_image, 2) == int(FRAGMENTED * per_image * 2)
    assert fitting_batch(per_image, free, factor=COMPACT) == 128  # 1.5x of 128 < 3x of 64 + 1


def _config(**kw):
    base = dict(
        dataset="breastmnist",
        arch="tiny_cnn",
        attacks=[AttackCell.make("pgd", "4/255", steps=2)],
        suite="custom",
        n_examples=24,
        sanity_attack=False,
    )
    base.update(kw)
    return EvaluationConfig(**base)


def test_batch_that_does_not_fit_is_refused_and_auto_picks_one_that_does(
    tiny_models, shared_data, tmp_path, monkeypatch
):
    import benchmark.evaluation.memory as memory

    run = {"data_dir": shared_data, "zoo": tiny_models["zoo"], "out_dir": tmp_path / "out"}
    per_image = graph_bytes_per_image(tiny_models["breastmnist"], torch.rand(2, 1, 28, 28))
    switched = []
    monkeypatch.setattr(memory, "compact_available", lambda: True)
    monkeypatch.setattr(memory, "compact_allocator", lambda: switched.append(1) or True)
    # room for 8 images as the default allocator fragments, 16 with the mmap threshold fixed
    free = int(plan_bytes(per_image, 8) / HEADROOM) + 1
    monkeypatch.setattr(memory, "available_bytes", lambda device: free)
    cache = AdversarialCache(tmp_path / "cache")
    # the 24-image subset is one batch at 256: it fits neither way
    with pytest.raises(ConfigError, match=r"--batch-size 16 or --batch-size auto"):
        evaluate(_config(batch_size=256), cache=cache, **run)
    assert not list((tmp_path / "cache").rglob("*.pt")) and not switched  # before any work
    doc, _ = evaluate(_config(batch_size="auto"), cache=cache, **run)
    assert doc["config"]["batch_size"] == 8 and not switched
    # 16 fits only with the allocator switched: it is switched, and the run goes on
    doc16, _ = evaluate(_config(batch_size=16), cache=cache, **run)
    assert switched and doc16["config"]["batch_size"] == 16
    # a pass cached at batch 8 needs no memory: not refused, not recomputed
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1)
    again, _ = evaluate(_config(batch_size=8), cache=AdversarialCache(tmp_path / "cache"), **run)
    assert again["timing"]["cache_hits"] == 1
    assert again["attacks"][0]["metrics"] == doc["attacks"][0]["metrics"]
    with pytest.raises(ConfigError, match="positive integer or auto"):
        evaluate(_config(batch_size="big"), cache=cache, **run)


def test_the_allocator_switch_works_here():
    """On this machine (Linux, glibc) the mmap threshold can be fixed; in a child process, so
    the test run keeps its allocator."""
    import subprocess
    import sys

    code = (
        "from benchmark.evaluation.memory import compact_allocator, compact_available\n"
        "assert compact_available() and compact_allocator() and compact_allocator()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
