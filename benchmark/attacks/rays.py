"""RayS (Chen & Gu, KDD 2020): a hard-label L-inf attack that searches over ray directions.

The attack sees only the predicted label (argmax of the logits): no gradients, no scores.
Following the paper (arXiv:2006.12792, Sec. 3, Alg. 1-3), the L-inf problem is reformulated
as a search over ray directions ``d in {-1, +1}^D``: for a direction, the decision-boundary
radius ``g(d)`` is the smallest ``r`` such that ``clip(x + r * d, 0, 1)`` is misclassified,
and RayS minimises ``g`` over directions by

* **hierarchical search**: starting from ``d = (1, ..., 1)``, flip the sign of one contiguous
  block of the flattened image at a time; the image is cut into ``2^s`` blocks at stage ``s``,
  so the block size halves from stage to stage;
* **fast check**: a new direction can only beat the best radius ``r_best`` if
  ``x + r_best * d_new`` is already adversarial, so one query at ``r_best`` decides whether the
  direction is searched at all;
* **binary search** for the boundary radius in ``[0, r_best]`` along a direction that passes
  the fast check; the best direction and radius are replaced when the new radius is smaller.

Parametrisation: the paper writes the ray as ``x + r * d / ||d||_2``; we use the unnormalised
``x + r * d``, so ``r`` *is* the L-inf norm of the (unclipped) perturbation. The two differ by
the constant ``sqrt(D)``; the reference code's binary-search tolerance (``1e-3`` on the
normalised radius) becomes ``1e-3 / sqrt(D)`` here, the default of ``tol``. Radii above 1 are
equivalent to 1 (every pixel saturates), so the first fast check, at ``r_best = inf``, queries
the corner ``clip(x + d, 0, 1)``, as the reference code does.

Benchmark adaptations (the paper reports the boundary distance, the benchmark needs an image in
the eps-ball):

* Batched with per-sample state and per-sample query counts; the block schedule is shared, as
  every active sample tries exactly one direction per block.
* ``query_limit`` is a hard per-sample cap (the clean check and every fast-check and
  binary-search query count); a search cut short by the budget keeps its best verified radius.
* One initial query checks the clean image: an already misclassified sample has radius 0 and is
  returned unchanged.
* ``early_stop``: a sample stops as soon as its best adversarial point is in the eps-ball
  (radius ``<= eps``, or its clipped perturbation's L-inf norm ``<= eps``); a binary search
  also stops there, since only membership of the ball matters to the benchmark.
* Output: the best adversarial point ``clip(x + r * d, 0, 1)`` where it lies in the eps-ball
  (then it equals ``x + clip(r * d, -eps, eps)`` clipped to [0, 1]), else the clean ``x``, as a
  failed attack returns in torchattacks' APGD/Square. Every returned adversarial image is one
  the model was actually queried on and misclassified.

RayS is deterministic (no random initialisation), so the seed does not change the output.
MedRDF (Xu et al. 2022, Sec. V-A.2) evaluates RayS at ``eps = 8/255`` without stating the query
budget; the default of 10000 is the RayS paper's budget.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.attacks.base import Attack, AttackMeta, register_attack
from benchmark.errors import ConfigError

logger = logging.getLogger(__name__)

#: The reference code's binary-search tolerance on the L2-normalised radius.
REFERENCE_TOL = 1e-3

#: A hard-label oracle: a batch of images (N, C, H, W) -> predicted class ids (N,).
Predict = Callable[[Tensor], Tensor]


@dataclass
class RaySResult:
    """Outcome of :func:`rays_linf` for a batch (all tensors have one entry per sample).

    Attributes:
        x_adv: the best adversarial point where it lies in the eps-ball, else the clean image.
        radius: best boundary radius found (L-inf norm of ``r * d``); 0 for samples that are
            misclassified clean, ``inf`` where no adversarial point was found.
        distance: L-inf norm of the best adversarial point's (clipped) perturbation, ``inf``
            where none was found.
        queries: model queries spent per sample (int64), never above the limit.
        success: whether an adversarial point inside the eps-ball was found.
    """

    x_adv: Tensor
    radius: Tensor
    distance: Tensor
    queries: Tensor
    success: Tensor


def block_schedule(dim: int) -> Iterator[tuple[int, int]]:
    """Blocks ``[start, end)`` of the flattened image, coarse to fine (hierarchical search, Sec. 3).

    Stage ``s`` cuts the ``dim`` coordinates into ``2^s`` contiguous blocks of
    ``ceil(dim / 2^s)`` coordinates (the last may be shorter); once blocks are single
    coordinates, the stages keep cycling over the coordinates. The generator is infinite.
    """
    if dim < 1:
        raise ValueError(f"block_schedule needs dim >= 1, got {dim}")
    stage = 0
    while True:
        size = -(-dim // (2**stage))  # ceil division, >= 1
        for start in range(0, dim, size):
            yield start, min(dim, start + size)
        stage += 1


def ray_points(x: Tensor, direction: Tensor, radius: Tensor) -> Tensor:
    """``clip(x + r * d, 0, 1)`` per row of flattened ``x`` and ``d`` (``r = inf`` gives the
    corner of the [0, 1] cube in direction ``d``)."""
    return (x + radius.unsqueeze(1) * direction).clamp(0.0, 1.0)


def linf_distance(x: Tensor, x_adv: Tensor) -> Tensor:
    """Per-row L-inf norm of ``x_adv - x`` (as the benchmark's output check computes it)."""
    return (x_adv - x).abs().amax(dim=1)


class HardLabelOracle:
    """Hard-label oracle over flattened images that counts queries per sample."""

    def __init__(self, predict: Predict, y: Tensor, image_shape: tuple[int, ...]) -> None:
        self.predict = predict
        self.y = y
        self.image_shape = image_shape
        self.queries = torch.zeros(len(y), dtype=torch.long, device=y.device)

    def is_adversarial(self, rows: Tensor, points: Tensor) -> Tensor:
        """One query per row: is ``points[i]`` (flattened) misclassified for sample ``rows[i]``?"""
        self.queries[rows] += 1
        labels = self.predict(points.reshape(len(rows), *self.image_shape))
        return labels != self.y[rows]


def search_boundary(
    oracle: HardLabelOracle,
    rows: Tensor,
    x: Tensor,
    direction: Tensor,
    r_best: Tensor,
    *,
    query_limit: int,
    tol: float,
    stop_distance: float | None = None,
) -> Tensor:
    """Fast check, then binary search for the boundary radius along ``direction`` (Sec. 3).

    Args:
        oracle: the counting hard-label oracle.
        rows: sample indices (into the batch) of the rows of ``x``.
        x: clean images, flattened, one row per entry of ``rows``.
        direction: candidate ray directions in {-1, +1}^D, same shape as ``x``.
        r_best: the current best radius per row (``inf`` when none was found yet).
        query_limit: per-sample budget; no sample is queried once it reached it.
        tol: the binary search stops when the bracket is at most this wide (L-inf units).
        stop_distance: if given, a search also stops once its adversarial end point lies within
            this L-inf distance of ``x`` (early stopping at eps).

    Returns:
        Per row, the smallest radius verified adversarial along ``direction``, or ``inf`` when
        the fast check failed (the direction cannot beat ``r_best``) or no query was left.
    """
    n = len(rows)
    hi = torch.full((n,), math.inf, device=x.device)
    lo = torch.zeros(n, device=x.device)
    can_query = oracle.queries[rows] < query_limit
    if not can_query.any():
        return hi
    # Fast check: one query at min(r_best, 1); radii >= 1 all give the same clipped point.
    r_check = r_best.clamp(max=1.0)
    idx = can_query.nonzero().flatten()
    hit = oracle.is_adversarial(rows[idx], ray_points(x[idx], direction[idx], r_check[idx]))
    hi[idx[hit]] = r_check[idx[hit]]
    searching = torch.zeros(n, dtype=torch.bool, device=x.device)
    searching[idx[hit]] = True
    while True:
        searching &= (hi - lo > tol) & (oracle.queries[rows] < query_limit)
        if stop_distance is not None and searching.any():
            idx = searching.nonzero().flatten()
            dist = linf_distance(x[idx], ray_points(x[idx], direction[idx], hi[idx]))
            searching[idx[dist <= stop_distance]] = False
        if not searching.any():
            return hi
        idx = searching.nonzero().flatten()
        mid = (lo[idx] + hi[idx]) / 2
        adv = oracle.is_adversarial(rows[idx], ray_points(x[idx], direction[idx], mid))
        hi[idx[adv]] = mid[adv]
        lo[idx[~adv]] = mid[~adv]


def _in_ball(radius: Tensor, distance: Tensor, eps: float) -> Tensor:
    """Whether an adversarial point is inside the eps-ball: radius or clipped norm <= eps."""
    return (radius <= eps) | (distance <= eps)


@torch.no_grad()
def rays_linf(
    predict: Predict,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    query_limit: int = 10000,
    early_stop: bool = True,
    tol: float | None = None,
) -> RaySResult:
    """Untargeted hard-label RayS under the L-inf norm, batched (Sec. 3, Alg. 1-3).

    Args:
        predict: hard-label oracle, images (N, C, H, W) in [0, 1] -> class ids (N,).
        x: clean batch, float NCHW in [0, 1].
        y: true class ids (N,).
        eps: L-inf budget on the [0, 1] scale (success criterion and early stopping).
        query_limit: maximum number of queries per sample (the clean check included).
        early_stop: stop a sample once its best adversarial point is inside the eps-ball;
            otherwise keep shrinking its radius until the budget is spent.
        tol: binary-search tolerance in L-inf units; ``None`` uses the reference code's
            ``1e-3`` on the L2-normalised radius, i.e. ``1e-3 / sqrt(D)``.

    Returns:
        The :class:`RaySResult` of the batch.
    """
    n = x.shape[0]
    xf = x.reshape(n, -1)
    dim = xf.shape[1]
    tol = REFERENCE_TOL / math.sqrt(dim) if tol is None else float(tol)
    oracle = HardLabelOracle(predict, y, tuple(x.shape[1:]))
    direction = torch.ones_like(xf)
    radius = torch.full((n,), math.inf, device=x.device)
    distance = torch.full((n,), math.inf, device=x.device)
    best = xf.clone()
    if n == 0 or dim == 0 or query_limit < 1:
        return RaySResult(x.clone(), radius, distance, oracle.queries, radius <= eps)

    # A sample misclassified clean is adversarial at radius 0.
    all_rows = torch.arange(n, device=x.device)
    clean_wrong = oracle.is_adversarial(all_rows, xf)
    radius[clean_wrong] = 0.0
    distance[clean_wrong] = 0.0
    stop_distance = eps if early_stop else None

    for start, end in block_schedule(dim):
        active = (oracle.queries < query_limit) & (radius > 0)
        if early_stop:
            active &= ~_in_ball(radius, distance, eps)
        rows = active.nonzero().flatten()
        if len(rows) == 0:
            break
        x_rows = xf[rows]
        candidate = direction[rows].clone()
        candidate[:, start:end] *= -1.0
        r_new = search_boundary(
            oracle,
            rows,
            x_rows,
            candidate,
            radius[rows],
            query_limit=query_limit,
            tol=tol,
            stop_distance=stop_distance,
        )
        found = torch.isfinite(r_new)
        if not found.any():
            continue
        points = ray_points(x_rows, candidate, torch.where(found, r_new, torch.zeros_like(r_new)))
        d_new = torch.where(found, linf_distance(x_rows, points), r_new)
        better = found & (r_new < radius[rows])
        if early_stop:  # a point in the ball beats one outside it, whatever the radius
            better |= (
                found & _in_ball(r_new, d_new, eps) & ~_in_ball(radius[rows], distance[rows], eps)
            )
        upd = better.nonzero().flatten()
        if len(upd):
            target = rows[upd]
            direction[target] = candidate[upd]
            radius[target] = r_new[upd]
            distance[target] = d_new[upd]
            best[target] = points[upd]

    success = _in_ball(radius, distance, eps)
    x_adv = torch.where(success.unsqueeze(1), best, xf).reshape(x.shape)
    return RaySResult(x_adv, radius, distance, oracle.queries, success)


@register_attack(
    "rays",
    AttackMeta(
        description="RayS (Chen & Gu 2020): hard-label ray search with fast check, L-inf",
        knowledge="decision-based",
        norm="linf",
        bounded=True,
        reference="https://arxiv.org/abs/2006.12792 (Alg. 1-3); MedRDF Sec. V-A.2",
        implementation="medrobustbench",
    ),
)
class RaySAttack(Attack):
    """RayS, untargeted, L-inf, hard-label: queries only the model's argmax, no gradients.

    Parameters (``defaults``):
        query_limit: maximum queries per sample (10000, the RayS paper's budget; MedRDF does
            not state one).
        early_stop: stop a sample once its adversarial point is inside the eps-ball.
        tol: binary-search tolerance in L-inf units; ``None`` is the reference's
            ``1e-3 / sqrt(D)``.

    After a call, ``last_queries`` (int64, per sample), ``last_radius`` (best boundary radius,
    ``inf`` if none) and ``last_success`` (bool) hold the diagnostics of that batch, on the CPU.
    """

    defaults = {"query_limit": 10000, "early_stop": True, "tol": None}

    def setup(self) -> None:
        limit = self.params["query_limit"]
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
            raise ConfigError(f"attack 'rays': query_limit must be an int >= 1, got {limit!r}")
        tol = self.params["tol"]
        if tol is not None and not (isinstance(tol, numbers.Real) and tol > 0):
            raise ConfigError(f"attack 'rays': tol must be > 0 or None, got {tol!r}")
        self.last_queries: Tensor | None = None
        self.last_radius: Tensor | None = None
        self.last_success: Tensor | None = None

    def _predict(self, x: Tensor) -> Tensor:
        """The hard label: argmax of the logits, computed without gradients."""
        with torch.no_grad():
            return self.model(x).argmax(dim=1)

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            result = rays_linf(
                self._predict,
                x,
                y,
                eps=self.eps,
                query_limit=int(self.params["query_limit"]),
                early_stop=bool(self.params["early_stop"]),
                tol=self.params["tol"],
            )
        self.last_queries = result.queries.cpu()
        self.last_radius = result.radius.cpu()
        self.last_success = result.success.cpu()
        if len(x):
            logger.debug(
                "rays: %d/%d adversarial within eps %.5f; queries mean %.1f, max %d",
                int(result.success.sum()),
                len(x),
                self.eps,
                float(result.queries.float().mean()),
                int(result.queries.max()),
            )
        return result.x_adv
