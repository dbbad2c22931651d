"""The time a protocol run will take, bounded before any attack work, from measured passes.

AutoAttack's cost depends on how many images each sub-attack still has to attack, which is
only known as it runs; so the estimate is a range. The lower bound runs APGD-CE on every image
and nothing else (every image broken at once); the upper bound runs every sub-attack at its
full budget on every image (no image ever broken), plus the convergence pass. Both use the
per-image time of one forward pass and of one forward-and-backward pass of the attacked model,
measured here on a probe batch: they are for this machine, this model and its load now (other
work on the cores slows the run past the upper bound).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from benchmark.results.protocols import PROTOCOLS, Protocol

if TYPE_CHECKING:
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
        """``between 12 min and 3.1 h`` for a log line."""
        return f"between {_duration(self.low)} and {_duration(self.high)}"


def _duration(seconds: float) -> str:
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

    def timed(grad: bool) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            if grad:
                xg = x.clone().requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(model(xg), y)
                loss.backward()
            else:
                with torch.no_grad():
                    model(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            best = min(best, time.perf_counter() - start)
        return best / len(x)

    return timed(False), timed(True)


def protocol_time_bounds(
    protocol: Protocol, n_images: int, num_classes: int, forward_s: float, backward_s: float
) -> TimeBounds:
    """Bounds on the attack time of ``protocol`` over ``n_images`` images of ``num_classes``
    classes, given the per-image seconds of a forward and of a forward-and-backward pass."""
    budgets = len(protocol.budgets)
    attack_runs, convergence_runs = gradient_runs(num_classes)
    low = high = 0.0
    for a in protocol.attacks:
        steps = int(a.param_dict.get("steps", 100))
        queries = int(a.param_dict.get("n_queries", 5000))
        low += budgets * n_images * steps * backward_s
        gradient_steps = (attack_runs + convergence_runs) * steps
        high += budgets * n_images * (gradient_steps * backward_s + queries * forward_s)
    return TimeBounds(low, high, 1000 * forward_s, 1000 * backward_s)


def log_protocol_estimate(plan: EvaluationPlan) -> TimeBounds | None:
    """Measure the attacked model on a probe batch and log the protocol run's time range
    before any attack work (None when the run follows no protocol)."""
    config = plan.config
    if config.protocol is None or not plan.passes:
        return None
    target = plan.passes[0].target
    x, _ = next(iter(plan.split.batches(min(32, len(plan.split)), device=plan.device)))
    forward_s, backward_s = per_image_seconds(target, x)
    bounds = protocol_time_bounds(
        PROTOCOLS.get(config.protocol),
        len(plan.split),
        plan.split.meta.num_classes,
        forward_s,
        backward_s,
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
    return bounds
