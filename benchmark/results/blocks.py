"""Typed views of the blocks of a results document: one metric with its interval, one attack
cell, one worst case. :class:`~benchmark.results.view.RunView` hands them out.

Pure Python and numpy (no torch), like :mod:`benchmark.results.naming`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.results.naming import ThreatModel, cell_label, cell_name
from benchmark.results.outcomes import read_outcomes


@dataclass(frozen=True)
class Metric:
    """A metric with its 95 % confidence interval and sample count (``value`` may be None
    when undefined, e.g. the AUC of a one-class subset)."""

    value: float | None
    ci95: tuple[float, float] | None = None
    n: int | None = None

    @classmethod
    def of(cls, block: dict[str, Any] | None) -> Metric | None:
        """The metric stored in a results block (``{"value", "ci95", "n"}``), None if absent."""
        if not block:
            return None
        ci = block.get("ci95")
        return cls(block.get("value"), tuple(ci) if ci else None, block.get("n"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class AttackView:
    """One attack block of a run: one attack cell under one threat model.

    Args:
        raw: the block.
        n: the run's number of images (``data.n``), to unpack the outcomes.
    """

    raw: dict[str, Any]
    n: int = 0

    @property
    def cell_id(self) -> str:
        return self.raw["cell_id"]

    @property
    def attack(self) -> str:
        return self.raw["attack"]

    @property
    def params(self) -> dict[str, Any]:
        return self.raw["config"]["params"]

    @property
    def steps(self) -> int | None:
        return self.params.get("steps")

    @property
    def name(self) -> str:
        """The attack and its step count: ``pgd-20``, ``fgsm``, ``transfer bim-100`` (see
        :func:`~benchmark.results.naming.cell_name`)."""
        return cell_name(self.raw)

    @property
    def label(self) -> str:
        """Column heading: ``pgd-20 8/255`` (see :func:`~benchmark.results.naming.cell_label`)."""
        return cell_label(self.raw)

    @property
    def eps(self) -> float:
        return self.raw["eps"]

    @property
    def eps_label(self) -> str:
        return self.raw["eps_label"]

    @property
    def norm(self) -> str | None:
        return self.raw.get("norm")

    @property
    def bounded(self) -> bool:
        return bool(self.raw.get("bounded"))

    @property
    def threat_model(self) -> ThreatModel:
        """The block's threat model (``white-box`` when the run predates the field)."""
        return ThreatModel(self.raw.get("threat_model", ThreatModel.WHITE_BOX.value))

    @property
    def sanity_only(self) -> bool:
        return bool(self.raw.get("sanity_only"))

    @property
    def metrics(self) -> dict[str, Any]:
        return self.raw["metrics"]

    @property
    def robust_accuracy(self) -> Metric:
        return Metric.of(self.metrics["robust_accuracy"])  # type: ignore[return-value]

    @property
    def fooling_ratio(self) -> Metric:
        return Metric.of(self.metrics["fooling_ratio"])  # type: ignore[return-value]

    @property
    def auc(self) -> Metric | None:
        return Metric.of(self.metrics.get("auc"))

    @property
    def balanced_accuracy(self) -> float | None:
        """Robust accuracy averaged per class (None when not recorded)."""
        return (self.metrics.get("per_class_accuracy") or {}).get("balanced_accuracy")

    @property
    def perturbation(self) -> dict[str, float]:
        return self.raw.get("perturbation") or {}

    @property
    def seconds(self) -> float | None:
        return (self.raw.get("timing") or {}).get("seconds")

    @property
    def cached(self) -> bool:
        return bool((self.raw.get("timing") or {}).get("cached"))

    @property
    def votes(self) -> dict[str, Any] | None:
        """MedRDF's vote report of the block (None for other defenses)."""
        return self.raw.get("votes")

    def at_linf(self, eps: float) -> bool:
        """Whether the block is an L-inf attack at budget ``eps``."""
        return self.norm == "linf" and abs(self.eps - eps) < 1e-9

    def outcomes(self) -> np.ndarray | None:
        """(n,) bool: image still classified correctly under this attack (multi-label: every
        label right); None for a schema-1 file."""
        return read_outcomes(self.raw.get("outcomes"), self.n)


@dataclass(frozen=True)
class WorstCaseView:
    """A worst case per sample over the attacks of one budget (and one threat model)."""

    raw: dict[str, Any]

    @property
    def norm(self) -> str:
        return self.raw["norm"]

    @property
    def eps(self) -> float:
        return self.raw["eps"]

    @property
    def eps_label(self) -> str:
        return self.raw["eps_label"]

    @property
    def budget(self) -> tuple[str, float]:
        return (self.norm, self.eps)

    @property
    def robust_accuracy(self) -> Metric:
        return Metric.of(self.raw["robust_accuracy"])  # type: ignore[return-value]

    @property
    def robust_balanced_accuracy(self) -> float | None:
        return self.raw.get("robust_balanced_accuracy")

    @property
    def attacks(self) -> list[str]:
        return list(self.raw.get("attacks", []))

    def at_linf(self, eps: float) -> bool:
        """Whether this is the L-inf worst case at budget ``eps``."""
        return self.norm == "linf" and abs(self.eps - eps) < 1e-9
