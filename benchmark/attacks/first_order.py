"""First-order attacks wrapped from torchattacks: FGSM, BIM, PGD (L-inf and L2), MI-FGSM,
DI-FGSM and CW-L2; FGSM / BIM / PGD on a multi-label model run our BCE engine instead."""

from __future__ import annotations

import torchattacks
from torch import Tensor

from benchmark.attacks.base import AttackMeta, register_attack
from benchmark.attacks.gradient import iterative_linf
from benchmark.attacks.torchattacks_base import TA, TorchAttacksAttack


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
