"""Convergence evidence of a protocol run (docs/protocol.md, "Convergence evidence").

The protocol's rule: doubling the APGD iterations or adding restarts on the images still
robust may change at most one image, or the run is unreliable. Per protocol budget eps, the
images still robust under that budget's worst case (correct clean and under every attack of the
protocol's norm at eps or below: :func:`~benchmark.evaluation.document.still_robust`, the rule
the document's worst case uses) are attacked again, and only they, by a stronger white-box
APGD: ``autoattack_ref`` with ``version="convergence"``, i.e. the protocol's APGD sub-attacks
(APGD-CE and APGD-margin for K = 2, APGD-DLR for K = 3, APGD-T for K >= 4) with twice the
protocol's iterations and :data:`RESTARTS` restarts for the untargeted runs. ``broken`` counts
the images the scorer misclassifies under it.

The result is evidence, not a new attack cell: the run's attack blocks and worst-case numbers
are NOT changed by it (an image the stronger attack breaks still counts as robust in the
worst case); the ``convergence`` block records what it found and
:func:`benchmark.leaderboard.statuses.unreliable_reason` reads it. Its adversarial batches are
kept in the run's cache as they finish, so an interrupted check resumes at its next batch
(``seconds`` is then the time of the run that finished it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmark.attacks.base import build_attack
from benchmark.evaluation.adversarial import CellRun, EarlierCost, batch_cost, batch_seed
from benchmark.evaluation.cache import AdversarialCache, cache_key, indices_digest
from benchmark.evaluation.document import still_robust
from benchmark.evaluation.draws import craft_seed
from benchmark.metrics.base import Predictions
from benchmark.models.pass_timer import PassTimer
from benchmark.results.naming import eps_label
from benchmark.results.protocols import (
    CONVERGENCE_MAX_CHANGED,
    CONVERGENCE_RULE,
    Protocol,
)

logger = logging.getLogger(__name__)

#: Restarts of the stronger attack's untargeted APGD runs (the standard version runs 1).
RESTARTS = 3
#: The attack the stronger run uses (its ``version="convergence"``).
ATTACK = "autoattack_ref"
#: ``judge(indices, x_adv) -> wrong``: which attacked images (their indices in the scored
#: split, their adversarial versions on the CPU) are misclassified.
Judge = Callable[[np.ndarray, torch.Tensor], np.ndarray]


def budget_check(
    model: torch.nn.Module,
    scorer: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    robust: np.ndarray,
    *,
    eps: float,
    steps: int,
    restarts: int = RESTARTS,
    seed: int = 0,
    batch_size: int = 128,
    attack_params: dict[str, Any] | None = None,
    judge: Judge | None = None,
    cache: AdversarialCache | None = None,
    key_parts: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Attack the images ``robust`` marks, and only those, with the stronger APGD at ``eps``.

    Args:
        model: the white-box target (the model the protocol's attack differentiated).
        scorer: what scores the examples (the deployed model).
        x: every scored image, float NCHW in [0, 1] (CPU).
        y: their labels (N,).
        robust: (N,) bool, the images still robust under this budget's worst case.
        eps: the budget.
        steps: APGD iterations of the stronger attack (the protocol's, doubled).
        restarts: restarts of its untargeted APGD runs.
        seed: run seed (batch seeds derive from it and the batch's first robust image).
        batch_size: images per attack batch.
        attack_params: the stronger attack's parameters besides ``steps`` (default: the
            ``convergence`` version with ``restarts``; the adaptive track's sweeps pass the
            ``rand`` version).
        judge: decides which attacked images are misclassified, from their indices in ``x``
            and their adversarial versions (default: one forward of ``scorer``; the adaptive
            track judges with the run's worst-of-draws scoring).
        cache: where each finished batch of adversarial examples is kept, so that an
            interrupted check resumes at its next batch (None: nothing kept).
        key_parts: what identifies the attacked images (data file, split, subset); with the
            target model's identity (:func:`model_identity`), the robust images, the attack's
            configuration, eps, steps, seed and batch size it makes the cache key.

    Returns:
        The budget's entry of the ``convergence`` block and, per image (N,), whether the
        stronger attack broke it (False wherever it did not run).
    """
    params = attack_params or {"version": "convergence", "restarts": restarts}
    attack = build_attack(ATTACK, model, eps=eps, seed=seed, steps=steps, **params)
    defense = getattr(model, "defense", None)
    idx = np.flatnonzero(robust)
    broken = np.zeros(len(robust), dtype=bool)
    start = time.perf_counter()
    device = next(model.parameters()).device
    key = None
    if cache is not None and key_parts is not None and cache.enabled:
        key = cache_key(
            check="convergence",
            **key_parts,
            target=model_identity(model),
            robust=indices_digest(torch.as_tensor(idx)),
            attack=attack.config(),
            eps=float(eps),
            steps=int(steps),
            seed=int(seed),
            batch_size=int(batch_size),
        )
    earlier = EarlierCost()
    with PassTimer(model) as timer:
        for b in range(0, len(idx), batch_size):
            part = torch.as_tensor(idx[b : b + batch_size])
            xb, yb = x[part].to(device), y[part].to(device)
            done = cache.load_batch_with_meta(key, b, tuple(xb.shape)) if key else None
            if done is not None:  # attacked by an earlier, interrupted run: its cost counts
                x_adv = done[0].to(device)
                earlier.add(done[1])
            else:
                before, t0 = dataclasses.replace(timer.times), time.perf_counter()
                if defense is not None:  # crafting draws, never a scoring draw's (craft_seed)
                    defense.reseed(craft_seed(batch_seed(seed, b)))
                x_adv = attack(xb, yb, seed=batch_seed(seed, b))
                if key is not None:
                    cache.save_batch(key, b, x_adv, meta=batch_cost(t0, timer, before))
            if judge is not None:
                wrong = judge(idx[b : b + batch_size], x_adv.cpu())
            else:
                wrong = _one_forward(scorer, x_adv, yb)
            broken[idx[b : b + batch_size]] = wrong
    entry = {
        "eps": float(eps),
        "eps_label": eps_label(eps),
        "robust_before": int(idx.size),
        "broken": int(broken.sum()),
        "attack": attack.config(),
        "seconds": round(time.perf_counter() - start + earlier.seconds, 3),
        **(timer.times + earlier.times).record(),
    }
    if earlier.batches:  # seconds and pass times include the earlier run's batches
        entry["resumed_batches"] = earlier.batches
        logger.info(
            "convergence at %s: %d batches from the cache (an earlier or interrupted check)",
            eps_label(eps),
            earlier.batches,
        )
    logger.info(
        "convergence at %s: %d of %d still-robust images broken by %d-step APGD",
        entry["eps_label"],
        entry["broken"],
        entry["robust_before"],
        steps,
    )
    return entry, broken


def model_identity(model: torch.nn.Module) -> str:
    """sha256 of what a white-box attack on ``model`` differentiates: its class, every tensor of
    its ``state_dict`` (the base model's weights), its defense's configuration (without the
    per-batch crafting seed) and its EOT draws and their layout. A defense's code, networks and
    gradient option are not in it: the adaptive track adds the passes' own identity of the
    pipeline (:func:`~benchmark.evaluation.passes.key_extra`) to the key."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    defense = getattr(model, "defense", None)
    config = dict(defense.config()) if defense is not None else None
    if config is not None:  # the crafting seed moves per batch; each batch reseeds anyway
        config.pop("seed", None)
    extra = {
        "defense": config,
        "samples": getattr(model, "samples", 1),
        "layout": getattr(model, "layout", None),
    }
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _one_forward(scorer: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Which of ``x_adv`` one eval-mode forward of ``scorer`` misclassifies."""
    was_training = scorer.training
    scorer.eval()
    try:
        with torch.no_grad():
            return (scorer(x_adv).argmax(1) != y).cpu().numpy()
    finally:
        scorer.train(was_training)


def convergence_block(budgets: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``convergence`` block: reliable when every budget's stronger attack broke at most
    :data:`~benchmark.results.protocols.CONVERGENCE_MAX_CHANGED` images."""
    return {
        "rule": CONVERGENCE_RULE,
        "reliable": all(b["broken"] <= CONVERGENCE_MAX_CHANGED for b in budgets),
        "budgets": budgets,
    }


def protocol_steps(protocol: Protocol) -> int:
    """Iterations of the stronger attack: twice the protocol's APGD iterations."""
    for a in protocol.attacks:
        if a.attack == ATTACK:
            return 2 * int(a.param_dict.get("steps", 100))
    return 200


def protocol_convergence(
    *,
    model: torch.nn.Module,
    scorer: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    clean: Predictions,
    runs: list[CellRun],
    protocol: Protocol,
    steps: int | None = None,
    restarts: int = RESTARTS,
    seed: int = 0,
    batch_size: int = 128,
    cache: AdversarialCache | None = None,
    key_parts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``convergence`` block of a run of ``protocol``: per budget, the worst case's
    still-robust images (from ``clean`` and the primary threat model's ``runs``) attacked by
    the stronger APGD (``steps`` iterations, default :func:`protocol_steps`), its batches kept
    in ``cache`` (:func:`budget_check`). Tests shrink ``steps`` and pass their own
    ``protocol`` budgets."""
    steps = protocol_steps(protocol) if steps is None else steps
    budgets = []
    for eps in protocol.budgets:
        robust = still_robust(clean, runs, protocol.norm, eps)
        entry, _ = budget_check(
            model,
            scorer,
            x,
            y,
            robust,
            eps=eps,
            steps=steps,
            restarts=restarts,
            seed=seed,
            batch_size=batch_size,
            cache=cache,
            key_parts=key_parts,
        )
        budgets.append(entry)
    return convergence_block(budgets)


__all__ = [
    "ATTACK",
    "RESTARTS",
    "Judge",
    "budget_check",
    "convergence_block",
    "model_identity",
    "protocol_convergence",
    "protocol_steps",
]
