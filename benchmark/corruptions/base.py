"""Corruption metadata and the ``CORRUPTIONS`` registry.

Two kinds: "sequence" (Robust-Benchmark perturbation sequences scored by flip probability,
Xu et al. 2021 Sec. 4.4) and "severity" (common corruptions at severities 1-5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark.registry import Registry


@dataclass(frozen=True)
class CorruptionMeta:
    """Static description of a registered corruption.

    Attributes:
        description: one line shown by ``bench list corruptions``.
        family: "noise", "blur", "weather" or "digital".
        kind: "sequence" or "severity".
        reference: where the definition comes from.
    """

    description: str
    family: str
    kind: str = "severity"
    reference: str = ""


CORRUPTIONS: Registry[Any] = Registry("corruption", meta_type=CorruptionMeta)
