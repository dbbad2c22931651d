"""Shared ranks on a leaderboard: every pair of entries tested on the same images, the
p-values corrected together, and each entry given the range of ranks the data allow.

Multiple comparisons: every pair of entries on a board is tested (exact McNemar for accuracy,
stratified sign-flip for balanced accuracy and for the balanced mean corruption accuracy of
per-image counts; :mod:`benchmark.metrics.paired`), and the p-values are adjusted together
with Holm's step-down procedure (Holm 1979), which controls the family-wise error rate at
``alpha = 0.05`` over all pairs of the board. Entry A is *significantly better* than B when its
metric is higher and the adjusted p-value is ``<= alpha``.

With ``m`` entries on the board, an entry's rank range is
``low = 1 + #(entries significantly better than it)`` and
``high = m - #(entries significantly worse than it)``; it is shown as ``"low"`` when both are
equal and ``"low-high"`` otherwise (e.g. ``"2-4"``). Entries that no test separates therefore
share a range; the range is a summary of the pairwise tests, not a confidence set of ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from benchmark.errors import ConfigError
from benchmark.metrics.balanced import (
    N_BOOT,
    as_score_vector,
    balanced_accuracy,
    balanced_score,
    check_labels,
    check_total,
    stratified_bootstrap_balanced,
    stratified_bootstrap_scores,
)
from benchmark.metrics.base import wilson_interval
from benchmark.metrics.paired import (
    CORRECTIONS,
    adjust_p_values,
    mcnemar_exact,
    sign_flip_balanced,
    sign_flip_balanced_scores,
)
from benchmark.results.outcomes import as_bool_vector

METRIC_NAMES = ("accuracy", "balanced", "balanced_score")


# ----------------------------------------------------------------------------- ranks


@dataclass(frozen=True)
class RankRange:
    """An entry's shared rank.

    Attributes:
        low: 1 + the number of entries significantly better than this one.
        high: the number of entries minus the number significantly worse than this one.
        display: ``"low"`` when ``low == high``, else ``"low-high"``.
    """

    low: int
    high: int
    display: str


def shared_ranks(
    significantly_better: np.ndarray | Callable[[int, int], bool], m: int | None = None
) -> list[RankRange]:
    """Rank ranges from pairwise significance.

    Args:
        significantly_better: an (m, m) boolean matrix, or a function of ``(i, j)``, true when
            entry ``i`` is significantly better than entry ``j``. It must be antisymmetric
            (never true both ways); the diagonal is ignored.
        m: the number of entries; required when a function is given.

    Returns:
        One :class:`RankRange` per entry, in the input order: ``low = 1 + #{j: j better than
        i}``, ``high = m - #{j: i better than j}``. ``low <= high`` always.

    Raises:
        ConfigError: if some pair is significantly better both ways.
    """
    if callable(significantly_better):
        if m is None:
            raise ConfigError("shared_ranks needs m with a function")
        better = np.array(
            [[i != j and bool(significantly_better(i, j)) for j in range(m)] for i in range(m)],
            dtype=bool,
        ).reshape(m, m)
    else:
        better = np.array(significantly_better, dtype=bool)
        if better.ndim != 2 or better.shape[0] != better.shape[1]:
            raise ConfigError(f"significance must be a square matrix, got {better.shape}")
        m = better.shape[0]
        better = better & ~np.eye(m, dtype=bool)
    if (better & better.T).any():
        raise ConfigError("an entry cannot be significantly better and worse than another")
    out = []
    for i in range(m):
        low = 1 + int(better[:, i].sum())
        high = m - int(better[i, :].sum())
        out.append(RankRange(low, high, str(low) if low == high else f"{low}-{high}"))
    return out


@dataclass(frozen=True)
class BoardRank:
    """One entry of a ranked board.

    Attributes:
        name: the entry.
        value: its accuracy, balanced accuracy or balanced score.
        ci95: its 95 % interval (Wilson or stratified bootstrap).
        ci_method: ``"wilson"`` or ``"stratified bootstrap"``.
        n: number of images.
        rank_low: see :class:`RankRange`.
        rank_high: see :class:`RankRange`.
        display: ``"1"``, ``"2-4"``, ...
        p_values: other entry -> p-value of the pair after the correction.
        p_values_raw: other entry -> p-value of the pair before the correction.
        p_methods: other entry -> how the pair's p-value was computed (the test's method).
    """

    name: str
    value: float
    ci95: tuple[float, float]
    ci_method: str
    n: int
    rank_low: int
    rank_high: int
    display: str
    p_values: dict[str, float] = field(default_factory=dict)
    p_values_raw: dict[str, float] = field(default_factory=dict)
    p_methods: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (numbers as JSON numbers, entries in name order)."""
        return {
            "name": self.name,
            "value": self.value,
            "ci95": [self.ci95[0], self.ci95[1]],
            "ci_method": self.ci_method,
            "n": self.n,
            "rank_low": self.rank_low,
            "rank_high": self.rank_high,
            "rank": self.display,
            "p_values": dict(sorted(self.p_values.items())),
            "p_values_raw": dict(sorted(self.p_values_raw.items())),
            "p_methods": dict(sorted(self.p_methods.items())),
        }


def rank_board(
    outcomes: Mapping[str, Any],
    labels: Any,
    *,
    metric: str = "accuracy",
    alpha: float = 0.05,
    correction: str = "holm",
    seed: int = 0,
    n_boot: int = N_BOOT,
    total: int | None = None,
) -> list[BoardRank]:
    """Rank entries evaluated on the same images, with shared ranks where tests cannot separate.

    Every pair is tested (exact McNemar for ``"accuracy"``, stratified sign-flip for
    ``"balanced"`` and ``"balanced_score"``), the p-values of all pairs are corrected together,
    and an entry is significantly better than another when its metric is higher and the
    corrected p-value is ``<= alpha``; ranks follow :func:`shared_ranks`.

    Args:
        outcomes: entry name -> (N,) per-image outcomes, all on the same images in the order
            of ``labels``: booleans, or for ``"balanced_score"`` counts in ``[0, total]`` (how
            many of the ``total`` corrupted versions of each image are classified correctly).
        labels: (N,) integer class ids.
        metric: ``"accuracy"``, ``"balanced"`` or ``"balanced_score"`` (balanced mean
            corruption accuracy: :func:`~benchmark.metrics.balanced.balanced_score`, interval
            :func:`~benchmark.metrics.balanced.stratified_bootstrap_scores`, tests
            :func:`~benchmark.metrics.paired.sign_flip_balanced_scores`).
        alpha: family-wise error rate over the pairs of the board.
        correction: ``"holm"``, ``"bonferroni"`` or ``"none"``.
        seed: seed of the bootstrap intervals (and of Monte Carlo sign flips, if any).
        n_boot: resamples of the bootstrap intervals.
        total: the number of corrupted versions per image (e.g. 110); required for
            ``"balanced_score"`` and refused for the other metrics.

    Returns:
        One :class:`BoardRank` per entry, best first: by rank range, then value (descending),
        then name.
    """
    if metric not in METRIC_NAMES:
        raise ConfigError(f"unknown metric {metric!r}; use one of {', '.join(METRIC_NAMES)}")
    scores = metric == "balanced_score"
    if scores and total is None:
        raise ConfigError("metric 'balanced_score' needs total (corrupted versions per image)")
    if not scores and total is not None:
        raise ConfigError(f"total applies only to metric 'balanced_score', not {metric!r}")
    if scores:
        total = check_total(total)
    if correction not in CORRECTIONS:
        raise ConfigError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    if not outcomes:
        raise ConfigError("cannot rank an empty board")
    names = sorted(outcomes)
    vectors = [
        as_score_vector(outcomes[k], f"outcomes[{k!r}]", total)
        if total is not None
        else as_bool_vector(outcomes[k], f"outcomes[{k!r}]")
        for k in names
    ]
    n = vectors[0].shape[0]
    if any(v.shape[0] != n for v in vectors):
        raise ConfigError("every entry must be evaluated on the same images (lengths differ)")
    y = check_labels(labels, n)
    if n == 0:
        raise ConfigError("cannot rank entries on no images")

    values, cis = [], []
    for v in vectors:
        if metric == "accuracy":
            k = int(v.sum())
            values.append(k / n)
            cis.append(wilson_interval(k, n))
        elif total is not None:
            values.append(balanced_score(v, y, total))
            cis.append(stratified_bootstrap_scores(v, y, total, n_boot=n_boot, seed=seed))
        else:
            values.append(balanced_accuracy(v, y))
            cis.append(stratified_bootstrap_balanced(v, y, n_boot=n_boot, seed=seed))
    ci_method = "wilson" if metric == "accuracy" else "stratified bootstrap"

    pairs = list(combinations(range(len(names)), 2))
    tests = [
        mcnemar_exact(vectors[i], vectors[j])
        if metric == "accuracy"
        else sign_flip_balanced_scores(vectors[i], vectors[j], y, total, seed=seed)
        if total is not None
        else sign_flip_balanced(vectors[i], vectors[j], y, seed=seed)
        for i, j in pairs
    ]
    raw = [t.p_value for t in tests]
    adjusted = adjust_p_values(raw, correction) if pairs else np.zeros(0)
    m = len(names)
    better = np.zeros((m, m), dtype=bool)
    p_adj: list[dict[str, float]] = [{} for _ in names]
    p_raw: list[dict[str, float]] = [{} for _ in names]
    how: list[dict[str, str]] = [{} for _ in names]
    for (i, j), t, p, q in zip(pairs, tests, raw, adjusted, strict=True):
        p_raw[i][names[j]] = p_raw[j][names[i]] = float(p)
        how[i][names[j]] = how[j][names[i]] = t.method
        p_adj[i][names[j]] = p_adj[j][names[i]] = float(q)
        if q <= alpha and t.better == "a":
            better[i, j] = True
        elif q <= alpha and t.better == "b":
            better[j, i] = True
    ranks = shared_ranks(better)
    board = [
        BoardRank(
            name=names[i],
            value=float(values[i]),
            ci95=(float(cis[i][0]), float(cis[i][1])),
            ci_method=ci_method,
            n=n,
            rank_low=ranks[i].low,
            rank_high=ranks[i].high,
            display=ranks[i].display,
            p_values=p_adj[i],
            p_values_raw=p_raw[i],
            p_methods=how[i],
        )
        for i in range(m)
    ]
    return sorted(board, key=lambda e: (e.rank_low, e.rank_high, -e.value, e.name))


__all__ = ["METRIC_NAMES", "BoardRank", "RankRange", "rank_board", "shared_ranks"]
