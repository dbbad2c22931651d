"""A board and its rows: what a leaderboard page and ``bench leaderboard show`` display.

The boards themselves are built in :mod:`benchmark.leaderboard.ranking`; the statuses are
defined in :mod:`benchmark.leaderboard.statuses`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.leaderboard.runs import Entry, Run
from benchmark.leaderboard.statuses import EXPLORATORY, RANKED, STATUSES
from benchmark.metrics.ranks import BoardRank
from benchmark.results.naming import eps_label
from benchmark.results.protocols import Protocol, board_id

#: What the L-inf boards of a protocol are ranked by, in one sentence (docs/protocol.md).
RANK_TEST = (
    "Two entries are compared on the same images, image by image, with a stratified sign-flip "
    "test on the discordant images of each class (exactly McNemar when the classes have equal "
    "sizes); the p-values of all pairs are corrected together with Holm's step-down procedure "
    "at alpha = 0.05. An entry's rank is a range: from 1 + the number of entries significantly "
    'better to the number of entries minus those significantly worse ("2-4"); entries the '
    "data cannot separate share a range."
)

#: What the corruption boards are ranked by, in one sentence (docs/protocol.md).
CORRUPTION_RANK_TEST = (
    "Two entries are compared on the same corrupted images, image by image: per image, the "
    "difference of the shares of its corrupted versions each classifies correctly, with a "
    "stratified sign-flip test (each image's difference changes sign with probability 1/2 "
    "under the null, weighted by 1/n of its class); the p-values of all pairs are corrected "
    "together with Holm's step-down procedure at alpha = 0.05, and ranks are ranges as on the "
    "L-inf boards."
)


@dataclass
class Row:
    """One entry's line in one board.

    Attributes:
        entry: the entry.
        key_value: what the board ranks by (balanced worst-case accuracy; corruptions: mean
            corruption balanced accuracy or accuracy); None when unknown.
        status: ``ranked``, ``collapsed``, ``unreliable`` or ``exploratory``.
        reason: why the row is not ranked (None when ranked).
        rank: shared rank range (``"2-4"``), None unless ranked.
        ci95: 95 % interval of ``key_value`` (None when it cannot be computed).
        n: images the key is computed on.
        accuracy: plain worst-case accuracy (L-inf boards).
        accuracy_ci95: its Wilson interval.
        protocol: ``"mrb_linf_v2 2.0"`` for a row from a protocol run.
        cells: attack name -> robust accuracy at this eps.
        threat_model: the threat model of ``source``'s figures.
        source: the run the figures come from.
        details: clean accuracy, mFP and the other facts shown beside the key.
        p_values: ranked rows: other ranked entry -> the paired test's p-value after the
            board's Holm correction (what the rank ranges come from).
        p_values_raw: the same before the correction.
        p_methods: how each test's p-value was computed (exact, Monte Carlo with its flips).
    """

    entry: Entry
    key_value: float | None
    status: str = EXPLORATORY
    reason: str | None = None
    rank: str | None = None
    ci95: tuple[float, float] | None = None
    n: int | None = None
    accuracy: float | None = None
    accuracy_ci95: tuple[float, float] | None = None
    protocol: str | None = None
    cells: dict[str, float] = field(default_factory=dict)
    threat_model: str = ""
    source: Run | None = None
    details: dict[str, Any] = field(default_factory=dict)
    outcomes: np.ndarray | None = field(default=None, repr=False)
    p_values: dict[str, float] = field(default_factory=dict)
    p_values_raw: dict[str, float] = field(default_factory=dict)
    p_methods: dict[str, str] = field(default_factory=dict)

    @property
    def ranked(self) -> bool:
        return self.status == RANKED

    def take_rank(self, rank: BoardRank) -> None:
        """Set the figures its board's ranking gave it: the rank range, key, interval, n and
        the p-values of its paired tests."""
        self.rank, self.key_value, self.ci95, self.n = rank.display, rank.value, rank.ci95, rank.n
        self.details["rank_range"] = (rank.rank_low, rank.rank_high)
        self.p_values, self.p_values_raw = dict(rank.p_values), dict(rank.p_values_raw)
        self.p_methods = dict(rank.p_methods)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``bench leaderboard show --json``."""
        return {
            "entry": self.entry.key,
            "rank": self.rank,
            "status": self.status,
            "reason": self.reason,
            "value": self.key_value,
            "ci95": list(self.ci95) if self.ci95 else None,
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci95": list(self.accuracy_ci95) if self.accuracy_ci95 else None,
            "protocol": self.protocol,
            "source": self.source.path if self.source is not None else None,
            "p_values": dict(sorted(self.p_values.items())),
            "p_values_raw": dict(sorted(self.p_values_raw.items())),
            "p_methods": dict(sorted(self.p_methods.items())),
        }


@dataclass
class Board:
    """A leaderboard: one dataset and one threat model."""

    dataset: str
    kind: str  # "linf" or "corruptions"
    eps: float | None
    rows: list[Row]
    columns: list[str]
    chance: float | None = None
    """L-inf boards: the balanced score of a constant answer (1/K for K classes in the test
    subset), which is robust to every attack."""
    protocol: Protocol | None = None
    """The protocol whose board this is (None: a screening or corruption board)."""
    key_name: str = "balanced worst case"
    """What ``Row.key_value`` is."""
    has_seeds: bool = False
    """Whether some row carries ``details["seeds"]`` (its recipe's seeds,
    :mod:`benchmark.leaderboard.seeds`)."""
    has_seed_worst: bool = False
    """Whether some row carries ``details["seed_worst"]`` (its ranking figure over its recipe's
    seeds, :func:`benchmark.leaderboard.seed_worst.seed_worst_case`)."""
    has_earlier_recipe: bool = False
    """Whether some row's entry carries the "earlier training recipe" badge."""
    corruption_protocol: Any = None
    """The corruption protocol whose board this is (corruption boards;
    :class:`~benchmark.results.corruption_protocols.CorruptionProtocol`)."""
    transfer: Any = None
    """The transfer matrix at this board's budget, if one was computed
    (:class:`~benchmark.leaderboard.transfer.TransferTable`); rows then carry
    ``details["transfer"]``, their entry's worst transfer."""

    @property
    def board_id(self) -> str:
        """``linf-8-255`` or ``corruptions`` (``bench leaderboard show``)."""
        return "corruptions" if self.kind == "corruptions" else board_id("linf", self.eps or 0)

    @property
    def slug(self) -> str:
        return f"{self.dataset}--{self.board_id}"

    @property
    def title(self) -> str:
        if self.kind == "corruptions":
            return "corruptions"
        return f"L-inf {eps_label(self.eps or 0)}"

    @property
    def latest(self) -> str:
        dates = [r.source.created_at for r in self.rows if r.source is not None]
        return max(dates) if dates else ""

    @property
    def n_ranked(self) -> int:
        return sum(r.ranked for r in self.rows)

    @property
    def test(self) -> str | None:
        """How the ranked rows are compared (None: no paired test on this board)."""
        if self.kind == "corruptions":
            return CORRUPTION_RANK_TEST if self.corruption_protocol is not None else None
        return RANK_TEST if self.protocol is not None else None


def row_order(r: Row) -> tuple:
    """Sort key of a board's rows: by status (ranked first), rank range, key, plain accuracy
    (both descending) and entry."""

    def down(v: float | None) -> float:
        return -(v if v is not None else -1.0)

    return (
        STATUSES.index(r.status),
        r.details.get("rank_range", (0, 0)),
        down(r.key_value),
        down(r.accuracy),
        r.entry.key,
    )


__all__ = ["CORRUPTION_RANK_TEST", "RANK_TEST", "Board", "Row", "row_order"]
