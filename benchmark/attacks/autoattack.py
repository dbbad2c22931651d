"""APGD-CE, APGD-DLR and AutoAttack (Croce & Hein 2020) composed from torchattacks' sub-attacks at
the original budget and the dataset's class count."""

from __future__ import annotations

from typing import Any

import torch
import torchattacks
from torch import Tensor

from benchmark.attacks.base import AttackMeta, register_attack
from benchmark.attacks.torchattacks_base import TA, TorchAttacksAttack
from benchmark.errors import ConfigError


@register_attack(
    "apgd_ce",
    AttackMeta(
        description="APGD-CE (Croce & Hein 2020): step-size-free PGD on cross-entropy, 100 steps",
        reference="https://arxiv.org/abs/2003.01690",
        implementation=TA,
    ),
)
class APGDCEAttack(TorchAttacksAttack):
    """Auto-PGD with the cross-entropy loss."""

    ta_class = "APGD"
    loss = "ce"
    defaults = {"steps": 100, "n_restarts": 1, "rho": 0.75, "eot_iter": 1}

    def build(self):
        p = self.params
        return torchattacks.APGD(
            self.model,
            norm="Linf",
            eps=self.eps,
            steps=int(p["steps"]),
            n_restarts=int(p["n_restarts"]),
            seed=self.seed,
            loss=self.loss,
            eot_iter=int(p["eot_iter"]),
            rho=float(p["rho"]),
        )


@register_attack(
    "apgd_dlr",
    AttackMeta(
        description="APGD-DLR (Croce & Hein 2020): APGD on the DLR margin loss (>= 3 classes)",
        reference="https://arxiv.org/abs/2003.01690",
        implementation=TA,
        min_classes=3,
    ),
)
class APGDDLRAttack(APGDCEAttack):
    """Auto-PGD with the Difference-of-Logits-Ratio loss (defined for >= 3 classes)."""

    loss = "dlr"


STANDARD_QUERIES = 5000
"""Square's query budget in AutoAttack's standard version."""


@register_attack(
    "autoattack",
    AttackMeta(
        description="AutoAttack (Croce & Hein 2020): standard version at the original budget, "
        "or rand (APGD-CE/DLR with EOT) for randomized defenses",
        reference="https://arxiv.org/abs/2003.01690",
        implementation=TA,
    ),
)
class AutoAttackAttack(TorchAttacksAttack):
    """AutoAttack, ``version="standard"`` or ``"rand"``; each sub-attack runs on the points
    still robust.

    Standard: APGD-CE, APGD-T, FAB-T, Square at the original budget: 100 iterations for
    APGD/FAB, 5000 queries for Square (its p schedule not rescaled, as in the reference: see
    :meth:`square_rescaled`), one restart, ``n_target_classes = min(9, K - 1)``. With
    fewer than 4 classes the targeted sub-attacks are undefined and are replaced: 3 classes ->
    APGD-CE, APGD-DLR, FAB, Square; 2 classes -> APGD-CE, FAB, Square.

    Rand (Croce & Hein 2020, Sec. 5, for randomized defenses): APGD-CE and APGD-DLR with
    ``eot_iter`` gradient draws per step (20 in the paper; 1 when the attacked model already
    averages its draws, as the evaluation's EOT model does), no restarts; APGD-DLR needs at
    least 3 classes and is dropped for binary tasks. ``config()["params"]["subattacks"]``
    records what ran.
    """

    ta_class = "APGD/APGDT/FAB/Square (standard), APGD with EOT (rand)"
    defaults = {"steps": 100, "n_queries": 5000, "version": "standard", "eot_iter": 20}

    def setup(self) -> None:
        if self.params["version"] not in ("standard", "rand"):
            raise ConfigError(
                f"autoattack version must be standard or rand, got '{self.params['version']}'"
            )
        if int(self.params["eot_iter"]) < 1:
            raise ConfigError("autoattack eot_iter must be >= 1")

    def subattacks(self) -> list[tuple[str, Any]]:
        """The sub-attacks for this model's class count and version, in AutoAttack's order."""
        k = int(self.model.num_classes)
        m, eps, steps, seed = self.model, self.eps, int(self.params["steps"]), self.seed
        if self.params["version"] == "rand":
            eot = int(self.params["eot_iter"])
            out = [
                (
                    "apgd_ce",
                    torchattacks.APGD(
                        m, norm="Linf", eps=eps, steps=steps, seed=seed, loss="ce", eot_iter=eot
                    ),
                )
            ]
            if k >= 3:
                out.append(
                    (
                        "apgd_dlr",
                        torchattacks.APGD(
                            m,
                            norm="Linf",
                            eps=eps,
                            steps=steps,
                            seed=seed,
                            loss="dlr",
                            eot_iter=eot,
                        ),
                    )
                )
            return out
        apgd_ce = torchattacks.APGD(
            m, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, loss="ce"
        )
        square = torchattacks.Square(
            m,
            norm="Linf",
            eps=eps,
            n_queries=int(self.params["n_queries"]),
            n_restarts=1,
            seed=seed,
            resc_schedule=self.square_rescaled(),
        )
        if k >= 4:
            n_target = min(9, k - 1)
            apgd_t = torchattacks.APGDT(
                m,
                norm="Linf",
                eps=eps,
                steps=steps,
                n_restarts=1,
                seed=seed,
                n_classes=n_target + 1,
            )
            fab_t = torchattacks.FAB(
                m,
                norm="Linf",
                eps=eps,
                steps=steps,
                n_restarts=1,
                seed=seed,
                multi_targeted=True,
                n_classes=n_target + 1,
            )
            return [("apgd_ce", apgd_ce), ("apgd_t", apgd_t), ("fab_t", fab_t), ("square", square)]
        fab = torchattacks.FAB(
            m,
            norm="Linf",
            eps=eps,
            steps=steps,
            n_restarts=1,
            seed=seed,
            multi_targeted=False,
            n_classes=k,
        )
        if k == 3:
            apgd_dlr = torchattacks.APGD(
                m, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, loss="dlr"
            )
            return [("apgd_ce", apgd_ce), ("apgd_dlr", apgd_dlr), ("fab", fab), ("square", square)]
        return [("apgd_ce", apgd_ce), ("fab", fab), ("square", square)]

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        x_adv = x.clone()
        with torch.no_grad():
            robust = self.model(x).argmax(1) == y
        for _, attack in self.subattacks():
            idx = robust.nonzero().flatten()
            if len(idx) == 0:
                break
            candidate = attack(x[idx], y[idx])
            with torch.no_grad():
                fooled = self.model(candidate).argmax(1) != y[idx]
            x_adv[idx[fooled]] = candidate[fooled]
            robust[idx[fooled]] = False
        return x_adv

    def square_rescaled(self) -> bool:
        """Whether Square's schedule of the square size p is rescaled to ``n_queries``. At the
        original 5000 queries it is not, as in the reference standard version
        (``resc_schedule=False``; torchattacks' default would halve every stage of the
        schedule); at a reduced budget it is (torchattacks' default), so the schedule still
        runs to its end within the budget."""
        return int(self.params["n_queries"]) != STANDARD_QUERIES

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["params"]["subattacks"] = [name for name, _ in self.subattacks()]
        if not self.square_rescaled():  # examples crafted before this rule had it rescaled
            cfg["params"]["square_resc_schedule"] = False
        if self.params["version"] == "standard":  # unused: keep standard cache keys unchanged
            cfg["params"].pop("eot_iter")
        return cfg
