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

import torch
import torchattacks
from torch import Tensor

from benchmark.attacks.base import Attack, AttackMeta, register_attack
from benchmark.attacks.gradient import iterative_linf
from benchmark.errors import ConfigError

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


class _SignFamily(TorchAttacksAttack):
    """FGSM / BIM / PGD: torchattacks for single-label models, our BCE engine for multi-label."""

    random_start = False

    def _multi_label(self) -> bool:
        return bool(getattr(self.model, "multi_label", False))

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        if not self._multi_label():
            return self.build()(x, y)
        steps = int(self.params.get("steps", 1))
        alpha = self.eps if self.ta_class == "FGSM" else self.step_size()
        return iterative_linf(
            self.model,
            x,
            y,
            eps=self.eps,
            alpha=alpha,
            steps=steps,
            random_start=self.random_start and bool(self.params.get("random_start", True)),
            step_rule="sign",
            multi_label=True,
        )

    def implementation(self) -> str:
        if self._multi_label():
            return "medrobustbench.iterative_linf(sign, bce)"
        return super().implementation()


@register_attack(
    "fgsm",
    AttackMeta(
        description="FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps",
        reference="https://arxiv.org/abs/1412.6572",
        implementation=TA,
        multi_label=True,
    ),
)
class FGSMAttack(_SignFamily):
    """Fast Gradient Sign Method."""

    ta_class = "FGSM"

    def build(self):
        return torchattacks.FGSM(self.model, eps=self.eps)


@register_attack(
    "bim",
    AttackMeta(
        description="BIM / I-FGSM (Kurakin et al. 2017): iterated FGSM, alpha = eps/steps default",
        reference="https://arxiv.org/abs/1607.02533",
        implementation=TA,
        multi_label=True,
    ),
)
class BIMAttack(_SignFamily):
    """Basic Iterative Method (I-FGSM), no random start."""

    ta_class = "BIM"
    defaults = {"steps": 10, "alpha": None}

    def build(self):
        return torchattacks.BIM(
            self.model, eps=self.eps, alpha=self.step_size(), steps=int(self.params["steps"])
        )


@register_attack(
    "pgd",
    AttackMeta(
        description="PGD L-inf (Madry et al. 2018) with uniform random start, alpha 2.5*eps/steps",
        reference="https://arxiv.org/abs/1706.06083",
        implementation=TA,
        multi_label=True,
    ),
)
class PGDAttack(_SignFamily):
    """Projected Gradient Descent under the L-inf norm."""

    ta_class = "PGD"
    random_start = True
    alpha_factor = 2.5
    defaults = {"steps": 10, "alpha": None, "random_start": True}

    def build(self):
        return torchattacks.PGD(
            self.model,
            eps=self.eps,
            alpha=self.step_size(),
            steps=int(self.params["steps"]),
            random_start=bool(self.params["random_start"]),
        )


@register_attack(
    "pgd_l2",
    AttackMeta(
        description="PGD L2 (Madry et al. 2018), eps is an L2 radius, alpha 2.5*eps/steps",
        norm="l2",
        reference="https://arxiv.org/abs/1706.06083",
        implementation=TA,
    ),
)
class PGDL2Attack(TorchAttacksAttack):
    """Projected Gradient Descent under the L2 norm."""

    ta_class = "PGDL2"
    alpha_factor = 2.5
    defaults = {"steps": 10, "alpha": None, "random_start": True}

    def build(self):
        return torchattacks.PGDL2(
            self.model,
            eps=self.eps,
            alpha=self.step_size(),
            steps=int(self.params["steps"]),
            random_start=bool(self.params["random_start"]),
        )


@register_attack(
    "mifgsm",
    AttackMeta(
        description="MI-FGSM (Dong et al. 2018): momentum iterative FGSM, decay 1.0",
        reference="https://arxiv.org/abs/1710.06081",
        implementation=TA,
    ),
)
class MIFGSMAttack(TorchAttacksAttack):
    """Momentum Iterative FGSM."""

    ta_class = "MIFGSM"
    defaults = {"steps": 10, "alpha": None, "decay": 1.0}

    def build(self):
        return torchattacks.MIFGSM(
            self.model,
            eps=self.eps,
            alpha=self.step_size(),
            steps=int(self.params["steps"]),
            decay=float(self.params["decay"]),
        )


@register_attack(
    "difgsm",
    AttackMeta(
        description="DI-FGSM (Xie et al. 2019): input diversity (resize 0.9, p 0.5), no momentum",
        reference="https://arxiv.org/abs/1803.06978",
        implementation=TA,
    ),
)
class DIFGSMAttack(TorchAttacksAttack):
    """Diverse-Input FGSM (torchattacks defaults for resize rate and diversity probability)."""

    ta_class = "DIFGSM"
    defaults = {
        "steps": 10,
        "alpha": None,
        "decay": 0.0,
        "resize_rate": 0.9,
        "diversity_prob": 0.5,
        "random_start": False,
    }

    def build(self):
        p = self.params
        return torchattacks.DIFGSM(
            self.model,
            eps=self.eps,
            alpha=self.step_size(),
            steps=int(p["steps"]),
            decay=float(p["decay"]),
            resize_rate=float(p["resize_rate"]),
            diversity_prob=float(p["diversity_prob"]),
            random_start=bool(p["random_start"]),
        )


@register_attack(
    "cw",
    AttackMeta(
        description="Carlini-Wagner L2 (2017), unbounded: report its median L2 norm",
        norm="l2",
        bounded=False,
        reference="https://arxiv.org/abs/1608.04644",
        implementation=TA,
    ),
)
class CWAttack(TorchAttacksAttack):
    """Carlini & Wagner L2 attack (Adam, lr 0.01; MDDA Sec. 4.1 uses 100 steps)."""

    ta_class = "CW"
    defaults = {"c": 1.0, "kappa": 0.0, "steps": 100, "lr": 0.01}

    def build(self):
        p = self.params
        return torchattacks.CW(
            self.model,
            c=float(p["c"]),
            kappa=float(p["kappa"]),
            steps=int(p["steps"]),
            lr=float(p["lr"]),
        )


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
    APGD/FAB, 5000 queries for Square, one restart, ``n_target_classes = min(9, K - 1)``. With
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

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["params"]["subattacks"] = [name for name, _ in self.subattacks()]
        if self.params["version"] == "standard":  # unused: keep standard cache keys unchanged
            cfg["params"].pop("eot_iter")
        return cfg
