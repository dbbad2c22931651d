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
:func:`benchmark.leaderboard.statuses.unreliable_reason` reads it. It is not cached.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from benchmark.attacks.base import build_attack
from benchmark.evaluation.adversarial import CellRun, batch_seed
from benchmark.evaluation.document import still_robust
from benchmark.metrics.base import Predictions
from benchmark.models.pass_timer import PassTimer
from benchmark.results.naming import eps_label
from benchmark.results.protocols import (
    CONVERGENCE_MAX_CHANGED,
    CONVERGENCE_RULE,
    PROTOCOLS,
    Protocol,
)

logger = logging.getLogger(__name__)

#: Restarts of the stronger attack's untargeted APGD runs (the standard version runs 1).
RESTARTS = 3
#: The attack the stronger run uses (its ``version="convergence"``).
ATTACK = "autoattack_ref"


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

    Returns:
        The budget's entry of the ``convergence`` block and, per image (N,), whether the
        stronger attack broke it (False wherever it did not run).
    """
    attack = build_attack(
        ATTACK, model, eps=eps, seed=seed, version="convergence", steps=steps, restarts=restarts
    )
    idx = np.flatnonzero(robust)
    broken = np.zeros(len(robust), dtype=bool)
    start = time.perf_counter()
    device = next(model.parameters()).device
    with PassTimer(model) as timer:
        for b in range(0, len(idx), batch_size):
            part = torch.as_tensor(idx[b : b + batch_size])
            xb, yb = x[part].to(device), y[part].to(device)
            x_adv = attack(xb, yb, seed=batch_seed(seed, b))
            was_training = scorer.training
            scorer.eval()
            try:
                with torch.no_grad():
                    wrong = scorer(x_adv).argmax(1) != yb
            finally:
                scorer.train(was_training)
            broken[idx[b : b + batch_size]] = wrong.cpu().numpy()
    entry = {
        "eps": float(eps),
        "eps_label": eps_label(eps),
        "robust_before": int(idx.size),
        "broken": int(broken.sum()),
        "attack": attack.config(),
        "seconds": round(time.perf_counter() - start, 3),
        **timer.times.record(),
    }
    logger.info(
        "convergence at %s: %d of %d still-robust images broken by %d-step APGD",
        entry["eps_label"],
        entry["broken"],
        entry["robust_before"],
        steps,
    )
    return entry, broken


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
) -> dict[str, Any]:
    """The ``convergence`` block of a run of ``protocol``: per budget, the worst case's
    still-robust images (from ``clean`` and the primary threat model's ``runs``) attacked by
    the stronger APGD (``steps`` iterations, default :func:`protocol_steps`). Tests shrink
    ``steps`` and pass their own ``protocol`` budgets."""
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
        )
        budgets.append(entry)
    return convergence_block(budgets)


def plan_convergence(plan: Any, clean: Predictions, runs: list[CellRun]) -> dict[str, Any] | None:
    """:func:`protocol_convergence` for an evaluation plan (None without ``config.protocol``).
    The white-box target is the model the protocol's attack ran on."""
    config = plan.config
    if config.protocol is None:
        return None
    protocol = PROTOCOLS.get(config.protocol)
    target = next((r.attack.model for r in runs if r.cell.attack == ATTACK), plan.scorer)
    if plan.defense is not None:
        plan.defense.reseed(config.seed)
    return protocol_convergence(
        model=target,
        scorer=plan.scorer,
        x=plan.split.images.float().div(255.0),
        y=plan.split.labels,
        clean=clean,
        runs=runs,
        protocol=protocol,
        seed=config.seed,
        batch_size=config.batch_size,
    )


__all__ = [
    "RESTARTS",
    "budget_check",
    "convergence_block",
    "plan_convergence",
    "protocol_convergence",
    "protocol_steps",
]
