"""Our own gradient attacks: the no-sign family (FGNM, BINM, PGDNM) and BCE sign attacks.

One iterative L-inf engine, :func:`iterative_linf`, covers them all: a step rule ("sign" or
"nosign"), a loss (CE, or BCE on all labels for multi-label models), the number of steps, the
step size, an optional uniform random start, and after every step the projection onto the
eps-ball and [0, 1].

No-sign step (the no-sign report, ``nosign_attacks_covid_xray.md`` Sec. 4.2 (2.2), eqs. 5-8):
the sign of the gradient is replaced by the raw gradient rescaled to the same norm,
``g / ||g|| * ||sign(g)||`` (eq. 5's zeta). The report leaves the norm unspecified; we use the
per-sample L2 norm of Cheng et al. 2021 ("Fast Gradient Non-sign Methods"), which the report
cites for the operator, so an NM step has the L2 length of the sign step it replaces.
Eq. 6 (FGNM) writes no clipping and the report's iterative runs clip to a radius of 1; we
apply "the usual clip/projection" to the eps-ball and [0, 1] (as eqs. 7-8 write ``Clip_x,eps``
and ``Proj_x+S``), so the no-sign attacks are compared with FGSM/BIM/PGD at the same L-inf
budget. The step size of the iterative variants defaults to ``alpha = eps / steps`` (the
report's BIM setting, Sec. 4.2 (2.1)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.attacks.base import Attack, AttackMeta, frozen_parameters, register_attack

NOSIGN_REF = "No-sign attack report (nosign_attacks_covid_xray.md), Sec. 4.2 (2.2), eqs. 5-8"


def attack_loss(logits: Tensor, y: Tensor, multi_label: bool) -> Tensor:
    """Summed loss the attack ascends: CE on class ids, or BCE on all labels (untargeted)."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum")
    return F.cross_entropy(logits, y, reduction="sum")


def nosign_direction(grad: Tensor) -> Tensor:
    """``g / ||g||_2 * ||sign(g)||_2`` per sample (eq. 5); zero where the gradient is zero."""
    flat = grad.flatten(1)
    g_norm = flat.norm(dim=1)
    sign_norm = flat.sign().norm(dim=1)
    scale = torch.where(g_norm > 0, sign_norm / g_norm.clamp_min(1e-30), torch.zeros_like(g_norm))
    return grad * scale.view(-1, *([1] * (grad.ndim - 1)))


def iterative_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool,
    step_rule: str,
    multi_label: bool,
) -> Tensor:
    """Iterated gradient ascent in the L-inf eps-ball around ``x`` (clipped to [0, 1]).

    Args:
        step_rule: "sign" (FGSM/BIM/PGD) or "nosign" (FGNM/BINM/PGDNM).
        random_start: start from ``x + U(-eps, eps)`` (PGD, Madry et al. 2018; Xu et al. eq. 1).
    """
    x_adv = x.clone()
    if random_start:
        x_adv = (x_adv + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    with frozen_parameters(model):
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = attack_loss(model(x_adv), y, multi_label)
            (grad,) = torch.autograd.grad(loss, x_adv)
            direction = grad.sign() if step_rule == "sign" else nosign_direction(grad)
            with torch.no_grad():
                x_adv = x_adv + alpha * direction
                x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)
    return x_adv.detach()


class _IterativeAttack(Attack):
    """Shared body of the iterative L-inf attacks below."""

    step_rule = "sign"
    random_start = False
    single_step = False

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        steps = 1 if self.single_step else int(self.params["steps"])
        return iterative_linf(
            self.model,
            x,
            y,
            eps=self.eps,
            alpha=self.eps if self.single_step else self.step_size(),
            steps=steps,
            random_start=self.random_start and bool(self.params.get("random_start", True)),
            step_rule=self.step_rule,
            multi_label=bool(getattr(self.model, "multi_label", False)),
        )

    def config(self) -> dict:
        cfg = super().config()
        cfg["params"]["loss"] = self.loss_name()
        return cfg


@register_attack(
    "fgnm",
    AttackMeta(
        description="FGNM: one no-sign step x + eps * g/||g|| * ||sign g||, clipped (eq. 6)",
        reference=NOSIGN_REF,
        multi_label=True,
    ),
)
class FGNMAttack(_IterativeAttack):
    """Fast Gradient Non-sign Method (eq. 6)."""

    step_rule = "nosign"
    single_step = True


@register_attack(
    "binm",
    AttackMeta(
        description="BINM: iterative no-sign method, x_0 = x, Clip_x,eps each step (eq. 7)",
        reference=NOSIGN_REF,
        multi_label=True,
    ),
)
class BINMAttack(_IterativeAttack):
    """Basic Iterative Non-sign Method (eq. 7); alpha defaults to eps / steps."""

    step_rule = "nosign"
    defaults = {"steps": 10, "alpha": None}


@register_attack(
    "pgdnm",
    AttackMeta(
        description="PGDNM: no-sign PGD with a uniform random start, Proj_x+S each step (eq. 8)",
        reference=NOSIGN_REF,
        multi_label=True,
    ),
)
class PGDNMAttack(_IterativeAttack):
    """Projected Gradient Descent, Non-sign (eq. 8); alpha defaults to eps / steps."""

    step_rule = "nosign"
    random_start = True
    defaults = {"steps": 10, "alpha": None, "random_start": True}


class SignAttackBCE(_IterativeAttack):
    """FGSM / BIM / PGD with the same engine, used for multi-label models (BCE on all labels,
    untargeted), where torchattacks' CE-only classes do not apply (Xu et al. Sec. 4.2.1)."""
