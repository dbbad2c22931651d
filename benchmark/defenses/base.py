"""Defense metadata and the ``DEFENSES`` registry (the plugin API builds on this).

Kinds: "preprocessing" (``purify(x)``), "wrapper" (``wrap(model)``, e.g. randomized voting)
and "training" (``train(...)``). The declared flags drive the evaluation: ``randomized`` ->
EOT, ``differentiable=False`` -> BPDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmark.registry import Registry

DEFENSE_KINDS = ("preprocessing", "wrapper", "training")


@dataclass(frozen=True)
class DefenseMeta:
    """Static description of a defense.

    Attributes:
        kind: "preprocessing", "wrapper" or "training".
        randomized: whether outputs depend on random draws.
        differentiable: whether gradients flow through the defense.
        forward_passes: base-model forward passes per input (inference cost).
        reference: paper (URL and section) the defense implements.
        version: version of the implementation.
        license: licence of the submission.
        authors: who wrote it.
        description: one line shown by ``bench list defenses``.
    """

    kind: str
    randomized: bool
    differentiable: bool
    forward_passes: int = 1
    reference: str = ""
    version: str = "1.0"
    license: str = ""
    authors: tuple[str, ...] = ()
    description: str = ""


DEFENSES: Registry[Any] = Registry("defense", meta_type=DefenseMeta)
