"""Attack interface metadata and the ``ATTACKS`` registry.

Attacks take float32 NCHW input in [0, 1] with eps on the [0, 1] pixel scale (``8/255``).
The attack suite itself (torchattacks wrappers, no-sign attacks, GAP, RayS, adaptive
attacks) registers here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark.registry import Registry


@dataclass(frozen=True)
class AttackMeta:
    """Static description of a registered attack.

    Attributes:
        description: one line shown by ``bench list attacks``.
        norm: "linf", "l2" or "none" (unbounded / corruption-like).
        knowledge: "white-box", "score-based", "decision-based" or "transfer".
        bounded: whether results must lie inside the eps-ball.
        reference: paper or section the implementation follows.
    """

    description: str
    norm: str = "linf"
    knowledge: str = "white-box"
    bounded: bool = True
    reference: str = ""


ATTACKS: Registry[Any] = Registry("attack", meta_type=AttackMeta)
