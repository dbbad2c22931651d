"""The time a run's attacks will take, bounded before any attack work, from measured passes.

Every run with attacks logs an estimate first (:func:`log_run_estimate`): per attack cell not
already in the cache, its full budget (steps x one forward-and-backward pass, or queries x one
forward pass for a score- or decision-based attack) times the images, times the EOT draws of an
adaptive cell on a randomized defense. The per-image times are those of the base model on a
probe batch here; the lower bound leaves the defense's own cost out, the upper bound adds it
to every forward pass of a cell crafted on the defended pipeline. Attacks that stop early on
broken images take less.

A protocol run's estimate (:func:`log_protocol_estimate`) is more precise:

AutoAttack's cost depends on how many images each sub-attack still has to attack, which is
only known as it runs; so the estimate is a range. The lower bound runs APGD-CE on every image
and nothing else (every image broken at once); the upper bound runs every sub-attack at its
full budget on every image (no image ever broken), plus the convergence pass. Both use the
per-image time of one forward pass and of one forward-and-backward pass of the attacked model,
measured here on a probe batch: they are for this machine, this model and its load now (other
work on the cores slows the run past the upper bound). Since the two bounds lie far apart,
the estimate also says what the published runs of the protocol on the dataset took
(:func:`past_runs_text`, from ``leaderboard/results`` when the working directory has it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from benchmark import paths
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.passes import QUERY_KNOWLEDGE
from benchmark.results.cost import PastRun, past_runs
from benchmark.results.naming import ThreatModel
from benchmark.results.protocols import PROTOCOLS, Protocol

if TYPE_CHECKING:
    from benchmark.evaluation.passes import AttackPass
    from benchmark.evaluation.plan import EvaluationPlan

logger = logging.getLogger(__name__)


def gradient_runs(num_classes: int) -> tuple[int, int]:
    """Full-length gradient attack runs per image of the protocol's AutoAttack and of its
    convergence pass (in units of the protocol's iterations), by class count: APGD-CE, the
    second APGD (margin for K = 2, DLR for K = 3, targeted per target class for K >= 4) and FAB
    (targeted per target class for K >= 3); the convergence pass runs the two APGD attacks at
    twice the iterations with 3 restarts (APGD-T: once per target)."""
    targets = min(num_classes - 1, 9)
    if num_classes <= 2:
        return 3, 2 * (3 + 3)
    if num_classes == 3:
        return 1 + 1 + targets, 2 * (3 + 3)
    return 1 + 2 * targets, 2 * (3 + targets)


@dataclass(frozen=True)
class TimeBounds:
    """Seconds a protocol's attack work takes at least and at most on this machine."""

    low: float
    high: float
    forward_ms: float
    backward_ms: float

    def text(self) -> str:
        """``between 12 min and 3.1 h`` for a log line (one figure when both agree)."""
        if _duration(self.low) == _duration(self.high):
            return _duration(self.low)
        return f"between {_duration(self.low)} and {_duration(self.high)}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def per_image_seconds(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Seconds per image of a no-grad forward pass and of a forward-and-backward pass to the
    input, each the best of three on the probe batch ``x``."""
    x = x.detach()
    y = torch.zeros(len(x), dtype=torch.long, device=x.device)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        xg = x.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(xg), y).backward()

    return _best_per_image(forward, x), _best_per_image(forward_backward, x)


def _best_per_image(run: Callable[[], None], x: torch.Tensor) -> float:
    """Seconds per image of ``run()`` on the batch ``x``, the best of three (synchronised on
    CUDA)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        best = min(best, time.perf_counter() - start)
    return best / len(x)


def protocol_time_bounds(
    protocol: Protocol,
    n_images: int,
    num_classes: int,
    forward_s: float,
    backward_s: float,
    sanity_budget: tuple[int, int] | None = None,
) -> TimeBounds:
    """Bounds on the attack time of ``protocol`` over ``n_images`` images of ``num_classes``
    classes, given the per-image seconds of a forward and of a forward-and-backward pass.
    ``sanity_budget``: the sanity cells' (forward-and-backward, forward) passes per image over
    every pass of the run (:func:`pass_budget`, EOT draws included); None: each sanity attack
    once per pass of the protocol, without EOT."""
    budgets = len(protocol.budgets)
    attack_runs, convergence_runs = gradient_runs(num_classes)
    low = high = 0.0
    for a in protocol.attacks:
        steps = int(a.param_dict.get("steps", 100))
        queries = int(a.param_dict.get("n_queries", 5000))
        low += budgets * n_images * steps * backward_s
        gradient_steps = (attack_runs + convergence_runs) * steps
        high += budgets * n_images * (gradient_steps * backward_s + queries * forward_s)
    if protocol.sanity_attack:  # the large-eps sanity attacks
        if sanity_budget is None:  # each once per pass, without EOT
            passes = max(len(protocol.threat_models), 1)
            steps = sum(int(a.param_dict.get("steps", 10)) for a in protocol.sanity)
            sanity_budget = (passes * steps, 0)
        gradient_steps, queries = sanity_budget
        sanity = n_images * (gradient_steps * backward_s + queries * forward_s)
        low, high = low + sanity, high + sanity
    return TimeBounds(low, high, 1000 * forward_s, 1000 * backward_s)


def pass_budget(p: AttackPass, randomized: bool) -> tuple[int, int]:
    """(forward-and-backward passes, forward passes) per image of attack pass ``p`` at its
    full budget: ``steps`` x restarts (x EOT draws on a randomized defense's adaptive pass),
    or ``n_queries`` for an attack that only queries the model."""
    params, knowledge = p.attack.params, p.attack.meta.knowledge
    if p.attack.name == "transfer":  # the base attack's budget, spent on the surrogate
        from benchmark.attacks.base import ATTACKS
        from benchmark.attacks.transfer import base_params

        base = ATTACKS.get(params["base_attack"])
        params = {**base.defaults, **base_params(params.get("base_params"))}
        knowledge = base.meta.knowledge
    if knowledge in QUERY_KNOWLEDGE:
        return 0, int(params.get("n_queries", params.get("queries", 1000)))
    steps = int(params.get("steps", 1)) * int(params.get("n_restarts", params.get("restarts", 1)))
    if p.threat_model is ThreatModel.ADAPTIVE and randomized:
        steps *= max(int(getattr(p.target, "samples", 1)), int(params.get("eot_iter", 1)))
    return steps, 0


def run_time_bounds(
    plan: EvaluationPlan, cache: AdversarialCache | None = None
) -> tuple[TimeBounds, int, int] | None:
    """Bounds on the attack time of every pass of ``plan`` not found in ``cache``, the number
    of passes they cover and the number already cached (None without attack passes)."""
    if not plan.passes:
        return None
    todo = [
        p
        for p in plan.passes
        if cache is None or not cache.enabled or not cache.has(plan.pass_key(p))
    ]
    if not todo:  # every pass is in the cache: nothing to measure
        return TimeBounds(0.0, 0.0, 0.0, 0.0), 0, len(plan.passes)
    n = len(plan.split)
    x, _ = next(iter(plan.split.batches(min(32, n), device=plan.device)))
    forward_s, backward_s = per_image_seconds(plan.model, x)
    overhead = 1.0
    on_defense = [p for p in todo if p.threat_model.on_defense]
    if on_defense and plan.defended is not None:
        defended_s = forward_seconds(plan.defended, x)
        overhead = max(1.0, defended_s / max(forward_s, 1e-12))
    randomized = plan.defense is not None and bool(plan.defense.meta.randomized)
    surrogates: dict[str, tuple[float, float]] = {}
    low = high = 0.0
    for p in todo:
        grads, queries = pass_budget(p, randomized)
        fwd, bwd = forward_s, backward_s
        if p.attack.name == "transfer":  # crafted on the surrogate: time that model
            fwd, bwd = _surrogate_seconds(p, plan, x, surrogates)
        seconds = n * (grads * bwd + queries * fwd)
        low += seconds
        if p.threat_model.on_defense:  # the defense runs in every forward of these passes
            seconds += n * (grads + queries) * forward_s * (overhead - 1)
        high += seconds
    return (
        TimeBounds(low, high, 1000 * forward_s, 1000 * backward_s),
        len(todo),
        len(plan.passes) - len(todo),
    )


def _surrogate_seconds(
    p: AttackPass, plan: EvaluationPlan, x: torch.Tensor, seen: dict[str, tuple[float, float]]
) -> tuple[float, float]:
    """Per-image (forward, forward+backward) seconds of a transfer pass's surrogate, which
    is where its steps are spent (a ResNet-50 surrogate costs several times a small victim)."""
    from benchmark.models.zoo import ModelZoo

    mid = p.attack.surrogate_id(p.context)
    if mid not in seen:
        surrogate, _ = ModelZoo(p.context.zoo_root).load(mid, device=plan.device)
        seen[mid] = per_image_seconds(surrogate, x)
    return seen[mid]


def forward_seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Seconds per image of a no-grad forward pass of ``model`` (best of three)."""

    def forward() -> None:
        with torch.no_grad():
            model(x)

    return _best_per_image(forward, x)


def log_run_estimate(
    plan: EvaluationPlan, cache: AdversarialCache | None = None
) -> TimeBounds | None:
    """Log, before any attack work, how long a run's attacks will take (a protocol run's
    precise range, else :func:`run_time_bounds`'); None without attacks."""
    if plan.config.protocol is not None:
        bounds = log_protocol_estimate(plan)
        if cache is not None:
            log_resume_progress(plan, cache)
        return bounds
    found = run_time_bounds(plan, cache)
    if found is None:
        return None
    bounds, todo, cached = found
    if not todo:
        logger.info("every attack pass (%d) is in the cache: no attack work to do", cached)
        return bounds
    logger.info(
        "%d attack pass(es) to craft on %d images (%d found in the cache): %s here. "
        "Assumes every attack spends its full budget on every image (queries x forward "
        "%.2f ms, steps x forward+backward %.2f ms per image, measured on the base model now "
        "(transfer cells: on their surrogate); "
        "adaptive cells on a randomized defense x EOT draws); the upper bound adds the "
        "defense's own cost to each pass crafted on it. Early-stopping attacks take less, "
        "other work on the cores more",
        todo,
        len(plan.split),
        cached,
        bounds.text(),
        bounds.forward_ms,
        bounds.backward_ms,
    )
    return bounds


def log_protocol_estimate(plan: EvaluationPlan) -> TimeBounds | None:
    """Measure the attacked model on a probe batch and log the protocol run's time range
    before any attack work (None when the run follows no protocol)."""
    config = plan.config
    if config.protocol is None or not plan.passes:
        return None
    target = plan.passes[0].target
    x, _ = next(iter(plan.split.batches(min(32, len(plan.split)), device=plan.device)))
    forward_s, backward_s = per_image_seconds(target, x)
    randomized = plan.defense is not None and bool(plan.defense.meta.randomized)
    sanity = [pass_budget(p, randomized) for p in plan.passes if p.sanity]
    bounds = protocol_time_bounds(
        PROTOCOLS.get(config.protocol),
        len(plan.split),
        plan.split.meta.num_classes,
        forward_s,
        backward_s,
        sanity_budget=(sum(s[0] for s in sanity), sum(s[1] for s in sanity)),
    )
    logger.info(
        "protocol %s on %d images: the attacks will take %s here (forward %.2f ms, "
        "forward+backward %.2f ms per image); finished batches are kept if it is interrupted",
        config.protocol,
        len(plan.split),
        bounds.text(),
        bounds.forward_ms,
        bounds.backward_ms,
    )
    published = past_runs(paths.PUBLISHED_RESULTS, config.dataset, config.protocol)
    text = past_runs_text(
        published, config.protocol, config.dataset, plan.defense is not None, config.arch
    )
    if text:
        logger.info("%s", text)
    return bounds


def past_runs_text(
    runs: list[PastRun], protocol: str, dataset: str, defended: bool, arch: str | None = None
) -> str | None:
    """What the finished runs of ``protocol`` on ``dataset`` took, per device: those of the
    same kind (with or without a defense) and, where there are any, of the same ``arch``. A
    robust model keeps more images robust, so more of AutoAttack's sub-attacks run on it; where
    no run of the kind exists, the other kind's are given, with the direction they are off.
    None without a run."""
    kind = "defended" if defended else "undefended"
    same = [r for r in runs if r.defended == defended]
    note = ""
    if not same:
        same, kind = runs, ("undefended" if defended else "defended")
        note = (
            "; none of a defended model yet, which takes longer (more images survive to the "
            "later sub-attacks)"
            if defended
            else "; none of an undefended model yet, which takes less"
        )
    if not same:
        return None
    what = f"{kind} models"
    if arch is not None and any(r.arch == arch for r in same):
        same, what = [r for r in same if r.arch == arch], f"{kind} {arch} models"
    by_device: dict[str, list[float]] = {}
    for r in same:
        by_device.setdefault(r.device, []).append(r.seconds)
    parts = []
    for device, seconds in sorted(by_device.items()):
        low, high = _duration(min(seconds)), _duration(max(seconds))
        took = low if low == high else f"{low} to {high}"
        parts.append(f"{took} on {device} ({len(seconds)} run{'' if len(seconds) == 1 else 's'})")
    return (
        f"published {protocol} runs on {dataset} of {what} took "
        + "; ".join(parts)
        + f" (leaderboard/results){note}"
    )


def resume_progress(plan: EvaluationPlan, cache: AdversarialCache) -> list[str]:
    """What the cache already holds of the plan's attack passes, one phrase per pass that is
    done or begun: ``autoattack_ref_eps2-255_...: 3 of 8 batches (41 min spent)`` or ``...:
    in the cache``; empty when nothing is (a fresh run)."""
    n_batches = (len(plan.split) + plan.config.batch_size - 1) // plan.config.batch_size
    out = []
    for p in plan.passes:
        key = plan.pass_key(p)
        if cache.has(key):
            out.append(f"{p.cell.cell_id}: in the cache")
            continue
        done = cache.finished_batches(key)
        if done:
            spent = sum(float(m.get("seconds", 0.0)) for m in done)
            unknown = sum(1 for m in done if "seconds" not in m)
            cost = f"{_duration(spent)} spent" + (f", {unknown} of unknown cost" if unknown else "")
            out.append(f"{p.cell.cell_id}: {len(done)} of {n_batches} batches ({cost})")
    return out


def log_resume_progress(plan: EvaluationPlan, cache: AdversarialCache) -> None:
    """Log what an interrupted run left in the cache, which the run resumes from (the range
    above is the whole run's)."""
    progress = resume_progress(plan, cache)
    if progress:
        logger.info("resuming from the cache: %s", "; ".join(progress))
