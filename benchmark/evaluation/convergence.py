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
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from benchmark.attacks.base import build_attack
from benchmark.evaluation.adversarial import CellRun, batch_seed
from benchmark.evaluation.cache import AdversarialCache, cache_key, indices_digest
from benchmark.evaluation.defended import EOTModel
from benchmark.evaluation.document import still_robust
from benchmark.evaluation.draws import craft_seed
from benchmark.evaluation.passes import key_extra
from benchmark.metrics.adversarial import correct_mask
from benchmark.metrics.base import Predictions
from benchmark.models.pass_timer import PassTimer, PassTimes
from benchmark.results.naming import ThreatModel, eps_label
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
    resumed, earlier = 0, PassTimes()
    earlier_seconds = 0.0
    with PassTimer(model) as timer:
        for b in range(0, len(idx), batch_size):
            part = torch.as_tensor(idx[b : b + batch_size])
            xb, yb = x[part].to(device), y[part].to(device)
            done = cache.load_batch_with_meta(key, b, tuple(xb.shape)) if key else None
            if done is not None:  # attacked by an earlier, interrupted run: its cost counts
                x_adv, meta = done[0].to(device), done[1]
                resumed += 1
                earlier_seconds += float(meta.get("seconds", 0.0))
                earlier += PassTimes.from_dict(meta.get("times") or {})
            else:
                before, t0 = dataclasses.replace(timer.times), time.perf_counter()
                if defense is not None:  # crafting draws, never a scoring draw's (craft_seed)
                    defense.reseed(craft_seed(batch_seed(seed, b)))
                x_adv = attack(xb, yb, seed=batch_seed(seed, b))
                if key is not None:
                    cost = {
                        "seconds": time.perf_counter() - t0,
                        "times": timer.times.since(before),
                    }
                    cache.save_batch(key, b, x_adv, meta=cost)
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
        "seconds": round(time.perf_counter() - start + earlier_seconds, 3),
        **(timer.times + earlier).record(),
    }
    if resumed:  # seconds and pass times include the earlier run's batches
        entry["resumed_batches"] = resumed
    if resumed:
        logger.info(
            "convergence at %s: %d batches from the cache (an earlier or interrupted check)",
            eps_label(eps),
            resumed,
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


__all__ = [
    "RESTARTS",
    "adaptive_convergence",
    "budget_check",
    "convergence_block",
    "model_identity",
    "plan_convergence",
    "protocol_convergence",
    "protocol_steps",
]
