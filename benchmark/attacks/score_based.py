"""Score-based black-box attacks wrapped from torchattacks: Square (Andriushchenko et al. 2020)
and SPSA (Uesato et al. 2018)."""

from __future__ import annotations

import torchattacks

from benchmark.attacks.base import AttackMeta, register_attack
from benchmark.attacks.torchattacks_base import TA, TorchAttacksAttack


@register_attack(
    "square",
    AttackMeta(
        description="Square attack (Andriushchenko et al. 2020): score-based random search",
        knowledge="score-based",
        reference="https://arxiv.org/abs/1912.00049",
        implementation=TA,
    ),
)
class SquareAttack(TorchAttacksAttack):
    """Square attack, L-inf, margin loss."""

    ta_class = "Square"
    defaults = {"n_queries": 5000, "n_restarts": 1, "p_init": 0.8}

    def build(self):
        p = self.params
        return torchattacks.Square(
            self.model,
            norm="Linf",
            eps=self.eps,
            n_queries=int(p["n_queries"]),
            n_restarts=int(p["n_restarts"]),
            p_init=float(p["p_init"]),
            seed=self.seed,
        )


@register_attack(
    "spsa",
    AttackMeta(
        description="SPSA (Uesato et al. 2018): gradient-free, finite differences (MedRDF Sec. V)",
        knowledge="score-based",
        reference="https://arxiv.org/abs/1802.05666",
        implementation=TA,
    ),
)
class SPSAAttack(TorchAttacksAttack):
    """SPSA with MedRDF's settings by default: lr 0.01, 100 iterations, 128 samples."""

    ta_class = "SPSA"
    defaults = {"delta": 0.01, "lr": 0.01, "nb_iter": 100, "nb_sample": 128, "max_batch_size": 64}

    def build(self):
        p = self.params
        return torchattacks.SPSA(
            self.model,
            eps=self.eps,
            delta=float(p["delta"]),
            lr=float(p["lr"]),
            nb_iter=int(p["nb_iter"]),
            nb_sample=int(p["nb_sample"]),
            max_batch_size=int(p["max_batch_size"]),
        )
