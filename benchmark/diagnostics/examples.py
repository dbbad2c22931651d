"""Which images a run's figures show and their adversarial examples: seeded images per class,
one pass per attack family, the examples from the run's cache or crafted again on those
images alone (see :mod:`benchmark.diagnostics.run`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.evaluation.adversarial import batch_seed
from benchmark.evaluation.cache import cache_key, indices_digest
from benchmark.evaluation.draws import craft_seed

TARGET_EPS = 8 / 255
"""The gallery shows each family's pass nearest this budget (the boards' largest L-inf key)."""


@dataclass
class Shown:
    """What the figures show: images (positions in the run's scored split) and adversarial
    examples of them per chosen attack pass."""

    positions: torch.Tensor
    clean: torch.Tensor
    labels: torch.Tensor
    adversarial: dict[str, torch.Tensor] = field(default_factory=dict)
    passes: dict[str, Any] = field(default_factory=dict)
    recrafted: dict[str, int] = field(default_factory=dict)
    """Per family, how many shown examples are not the run's own (0: from the run's cache)."""
    attacked: dict[str, int] = field(default_factory=dict)
    """Per family, how many images this call attacked (0 when kept from an earlier call)."""


def pick_images(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted positions of ``per_class`` seeded images of each class (fewer where a class has
    fewer); for multi-label data, ``per_class`` times the label count, seeded."""
    gen = torch.Generator().manual_seed(seed)
    if labels.dim() > 1:
        n = min(len(labels), per_class * labels.shape[1])
        return torch.randperm(len(labels), generator=gen)[:n].sort().values
    out = []
    for k in sorted(set(labels.tolist())):
        pos = (labels == k).nonzero().flatten()
        out.append(pos[torch.randperm(len(pos), generator=gen)[:per_class]])
    return torch.cat(out).sort().values


def pick_passes(plan: Any, families: int) -> list[Any]:
    """One bounded L-inf pass per attack family (nearest :data:`TARGET_EPS`), under the
    strongest threat model the run has (adaptive, else white-box, else oblivious)."""
    order = {"adaptive": 0, "white-box": 1, "oblivious": 2}
    by_family: dict[str, Any] = {}
    for p in plan.passes:
        a = p.attack
        if not a.bounded or a.norm != "linf" or p.cell.eps > 32 / 255:
            continue
        rank = (order.get(p.threat_model.value, 3), abs(p.cell.eps - TARGET_EPS))
        best = by_family.get(p.cell.attack)
        if best is None or rank < best[0]:
            by_family[p.cell.attack] = (rank, p)
    chosen = sorted(by_family.values(), key=lambda v: (v[0], v[1].cell.attack))
    return [p for _, p in chosen[:families]]


def adversarial_of(
    plan: Any, p: Any, positions: torch.Tensor, cache: Any
) -> tuple[torch.Tensor, str]:
    """Adversarial examples of the scored split's ``positions`` under pass ``p`` and where they
    come from: ``"run"``, rows of the run's cached tensor; ``"kept"``, crafted on these images
    alone by an earlier call (cached under a key of their own, the pass's key and the
    positions); ``"attacked"``, crafted on these images alone now. The last two never stand for
    the run's examples."""
    key = plan.pass_key(p)
    shape = (len(plan.split), *plan.split.images.shape[1:])
    cached = cache.load(key, shape)
    if cached is not None:
        return cached[positions].float(), "run"
    own = cache_key(kind="diagnose-recrafted", run=key, positions=indices_digest(positions))
    again = cache.load(own, (len(positions), *shape[1:]))
    if again is not None:
        return again.float(), "kept"
    x = plan.split.images[positions].float().div(255.0).to(plan.device)
    y = plan.split.labels[positions].to(plan.device)
    if not p.attack.prepared and p.context is not None:
        p.attack.prepare(p.context)
        p.attack.prepared = True
    defense = getattr(p.target, "defense", None)
    if defense is not None:  # a crafting seed, never a scoring draw's (as craft_cell)
        defense.reseed(craft_seed(batch_seed(plan.config.seed, 0)))
    x_adv = p.attack(x, y, seed=batch_seed(plan.config.seed, 0)).detach().cpu()
    cache.save(own, x_adv, {"recrafted_for": "bench diagnose", "pass": p.cell.cell_id})
    return x_adv, "attacked"


__all__ = ["TARGET_EPS", "Shown", "adversarial_of", "pick_images", "pick_passes"]
