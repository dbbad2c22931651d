"""Attacks wrapped from torchattacks (Kim 2020): the library does the math, we do the rest.

The wrappers add what a benchmark needs on top of torchattacks: resolved and recorded
parameters, the benchmark's seeding and output checks (base class), the dataset's real class
count, and the original AutoAttack budget. Pitfalls handled rather than inherited:

* ``torchattacks.AutoAttack`` assumes 10 classes and runs APGD/APGD-T/FAB with 10 steps; our
  ``autoattack`` composes the sub-attacks itself with the original budget (100 steps, Square
  with 5000 queries; Croce & Hein 2020) and the dataset's class count.
* DLR needs >= 3 classes and targeted DLR / FAB-T need >= 4: for fewer classes the defined
  sub-attacks run instead (recorded in the config under ``subattacks``).
* Multi-label models (BCE): ``fgsm``, ``bim`` and ``pgd`` run our engine with a BCE loss on all
  labels (:mod:`benchmark.attacks.gradient`), since torchattacks' classes use CE only.
"""

from __future__ import annotations

from typing import Any

import torchattacks
from torch import Tensor

from benchmark.attacks.base import Attack

TA = "torchattacks"


class TorchAttacksAttack(Attack):
    """Base of the wrappers: subclasses build the torchattacks object in :meth:`build`."""

    ta_class: str = ""

    def build(self) -> torchattacks.attack.Attack:
        """The configured torchattacks attack for the current model."""
        raise NotImplementedError

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        return self.build()(x, y)

    def implementation(self) -> str:
        return f"torchattacks.{self.ta_class} {torchattacks.__version__}"

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["params"]["loss"] = self.loss_name()
        return cfg
