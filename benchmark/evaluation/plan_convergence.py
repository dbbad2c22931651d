"""Convergence evidence of an evaluation plan's protocol run (:mod:`.convergence` holds the
check itself): a deterministic-track run's stronger white-box APGD on the model its
AutoAttack ran on, and an adaptive-track run's sweeps on the defended pipeline (more
iterations; for a randomized defense, more EOT draws or smoothing copies), each judged by the
run's own scoring.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from benchmark.evaluation.adversarial import CellRun
from benchmark.evaluation.cache import AdversarialCache, indices_digest
from benchmark.evaluation.convergence import (
    ATTACK,
    RESTARTS,
    Judge,
    budget_check,
    convergence_block,
    protocol_convergence,
    protocol_steps,
)
from benchmark.evaluation.defended import EOTModel
from benchmark.evaluation.document import still_robust
from benchmark.evaluation.passes import key_extra
from benchmark.metrics.adversarial import correct_mask
from benchmark.metrics.base import Predictions
from benchmark.results.naming import ThreatModel
from benchmark.results.protocols import PROTOCOLS, Protocol


def plan_key_parts(plan: Any) -> dict[str, Any]:
    """What identifies a plan's scored images in a cache key: data file, split and subset."""
    return {
        "data": plan.split.sha256,
        "split": plan.split.split,
        "indices": indices_digest(plan.indices),
    }


def plan_convergence(
    plan: Any, clean: Predictions, runs: list[CellRun], cache: AdversarialCache | None = None
) -> dict[str, Any] | None:
    """:func:`protocol_convergence` for an evaluation plan (None without ``config.protocol``).
    The white-box target is the model the protocol's attack ran on; finished batches are kept
    in ``cache``."""
    config = plan.config
    if config.protocol is None:
        return None
    protocol = PROTOCOLS.get(config.protocol)
    if protocol.adaptive:
        return adaptive_convergence(plan, clean, runs, protocol, cache=cache)
    target = next((r.attack.model for r in runs if r.cell.attack == ATTACK), plan.scorer)
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
        cache=cache,
        key_parts=plan_key_parts(plan),
    )


def adaptive_convergence(
    plan: Any,
    clean: Predictions,
    runs: list[CellRun],
    protocol: Protocol,
    *,
    steps: int | None = None,
    cache: AdversarialCache | None = None,
) -> dict[str, Any]:
    """The ``convergence`` block of an adaptive-track run: per budget, the images still robust
    after every attack of both passes, attacked again on the defended pipeline by the sweeps'
    last steps, and judged by the run's worst-of-draws scoring.

    * ``iterations``: the adaptive APGD with ``sweep_factor`` x the protocol's iterations
      (AutoAttack's ``rand`` version on a randomized defense, the ``convergence`` version's
      APGD with restarts on a deterministic one);
    * ``eot`` (randomized defenses): the same APGD at the protocol's iterations with
      ``sweep_factor`` x the EOT draws (a voting defense: ``sweep_factor`` x its smoothing
      copies, ``attack_copies``).

    ``broken`` is the number of images either sweep broke (the rule allows
    :data:`~benchmark.results.protocols.CONVERGENCE_MAX_CHANGED`); each sweep's own count is
    in ``sweeps``. ``steps`` overrides the protocol's iterations (tests)."""
    config, defense = plan.config, plan.defense
    base_steps = protocol_steps(protocol) // 2 if steps is None else steps
    factor = protocol.sweep_factor
    adaptive = plan.adaptive_model
    randomized = bool(defense.meta.randomized)
    x = plan.split.images.float().div(255.0)
    y = plan.split.labels
    everything = _all_runs(runs)
    judge = _draws_judge(plan)

    def rand_params(model: Any) -> dict[str, Any]:
        return {"version": "rand", "eot_iter": 1 if model.averages else 20}

    sweeps: list[tuple[str, int, Any, dict[str, Any], Any]] = []
    if randomized:
        sweeps.append(
            ("iterations", factor * base_steps, adaptive, rand_params(adaptive), nullcontext)
        )
        copies = defense.params.get("attack_copies") if adaptive.samples == 1 else None
        if copies is not None:  # a voting defense smooths over its own copies
            more = adaptive
            # A factory: the sweep runs once per budget, and a context manager enters once.
            scope = functools.partial(_param_scaled, defense, "attack_copies", factor)
            draws = factor * int(copies)
        else:
            more = EOTModel(adaptive.defended, factor * adaptive.samples)
            scope = nullcontext
            draws = more.samples
        sweeps.append(("eot", base_steps, more, {**rand_params(more), "draws": draws}, scope))
    else:
        params = {"version": "convergence", "restarts": RESTARTS}
        sweeps.append(("iterations", factor * base_steps, adaptive, params, nullcontext))
    # The pipeline's identity as the adaptive passes key it: the submission's files, a robust
    # model's checkpoint, the gradient option (forced BPDA), the EOT draws.
    submission = None if plan.submission is None else plan.submission.sha256
    pipeline = key_extra(
        ThreatModel.ADAPTIVE, defense, adaptive, plan.robust_sha, config.bpda_always, submission
    )
    parts = {**plan_key_parts(plan), "pipeline": pipeline}
    budgets = []
    for eps in protocol.budgets:
        robust = still_robust(clean, everything, protocol.norm, eps)
        broken = np.zeros(robust.size, dtype=bool)
        records, first = [], None
        for name, n_steps, model, params, scope in sweeps:
            params = dict(params)
            draws = params.pop("draws", getattr(model, "samples", 1))
            with scope():
                entry, hit = budget_check(
                    model,
                    plan.scorer,
                    x,
                    y,
                    robust,
                    eps=eps,
                    steps=n_steps,
                    seed=config.seed,
                    batch_size=config.batch_size,
                    attack_params=params,
                    judge=judge,
                    cache=cache,
                    key_parts={**parts, "sweep": name, "draws": draws},
                )
            broken |= hit
            first = first or entry
            records.append(
                {
                    "sweep": name,
                    "steps": n_steps,
                    "eot_draws": draws,
                    "broken": entry["broken"],
                    "seconds": entry["seconds"],
                }
            )
        assert first is not None
        budgets.append({**first, "broken": int(broken.sum()), "sweeps": records})
    return convergence_block(budgets)


@contextmanager
def _param_scaled(defense: Any, name: str, factor: int) -> Iterator[None]:
    """``defense.params[name]`` multiplied by ``factor`` for the duration."""
    old = defense.params[name]
    defense.params[name] = int(old) * factor
    try:
        yield
    finally:
        defense.params[name] = old


def _all_runs(runs: list[CellRun]) -> list[CellRun]:
    """``runs`` without repeats (a cell can sit in two summary groups)."""
    seen: set[int] = set()
    out = []
    for r in runs:
        if id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    return out


def _draws_judge(plan: Any) -> Judge:
    """The run's own scoring as a judge: the deployed pipeline, worst of the run's draws,
    abstentions of a voting defense counted as errors."""

    def judge(idx: np.ndarray, x_adv: torch.Tensor) -> np.ndarray:
        pred, _, _ = plan.score(x_adv, plan.split.subset(torch.as_tensor(idx)))
        return ~correct_mask(pred)

    return judge


__all__ = ["adaptive_convergence", "plan_convergence", "plan_key_parts"]
