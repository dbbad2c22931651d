"""Building blocks of the training-time defenses: the inner maximisation and the losses.

A training defense (``kind="training"``) implements ``train(model, x, y)``: the loss of one
minibatch, whose gradient the trainer (:mod:`benchmark.training.loop`) follows. The
submissions ``pgd_at``, ``mpadvt``, ``maadvt``, ``trades`` and ``mart`` are thin subclasses of
:class:`AdversarialTraining` that pick the inner attack and the loss below; the losses are pure
functions of logits so that they can be checked on hand-computed tensors.

* Madry et al. 2018 (Xu et al. 2021 eq. 6): ``CE(f(x'), y)``, ``x'`` from PGD on CE.
* MAAdvT (Xu et al. 2021 Sec. 4.5, eqs. 7-10, Algorithm 2):
  ``CE(f(x'), y) + lambda * KL(f(x) || f(x')) * (1 - f_y(x))``.
* TRADES (Zhang et al. 2019, eq. 5 and the authors' code): ``CE(f(x), y) + beta *
  KL(f(x) || f(x'))``, ``x'`` maximising the KL from ``x + 0.001 N(0, 1)``.
* MART (Wang et al. 2020, eq. 7 and the authors' code): ``BCE(f(x'), y) + lambda *
  KL(f(x) || f(x')) * (1 - f_y(x))`` with the boosted CE ``-log f_y(x') - log(1 -
  max_{k != y} f_k(x'))``, ``x'`` from PGD on CE from ``x + 0.001 N(0, 1)``.

Adversarial examples are generated with the model in eval mode (batch-norm statistics frozen,
as in the TRADES and MART code) and the parameters' gradients off; the model is put back in
train mode for the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.attacks.base import frozen_parameters
from benchmark.attacks.gradient import attack_loss
from benchmark.defenses.base import Defense, SubmissionError


def softmax_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Per-sample ``KL(softmax(p) || softmax(q)) = sum_j p_j log(p_j / q_j)`` (eq. 7)."""
    log_p = F.log_softmax(p_logits, dim=1)
    log_q = F.log_softmax(q_logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def pgd_at_loss(adv_logits: Tensor, y: Tensor) -> Tensor:
    """Madry et al.: mean cross-entropy on the adversarial examples (BCE with logits over
    every label for multi-label float targets)."""
    if y.ndim == 2:
        return F.binary_cross_entropy_with_logits(adv_logits, y.float())
    return F.cross_entropy(adv_logits, y)


def maadvt_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, lam: float) -> Tensor:
    """MAAdvT, Xu et al. 2021 eqs. 8-10: ``CE(C(x'), y) + lambda R`` averaged over the batch,
    ``R = KL(C(x) || C(x')) (1 - C_y(x))``."""
    p_true = F.softmax(clean_logits, dim=1).gather(1, y[:, None]).squeeze(1)
    reg = softmax_kl(clean_logits, adv_logits) * (1 - p_true)
    return F.cross_entropy(adv_logits, y, reduction="none").add(lam * reg).mean()


def trades_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, beta: float) -> Tensor:
    """TRADES: ``CE(f(x), y) + beta KL(f(x) || f(x'))``, batch mean."""
    return F.cross_entropy(clean_logits, y) + beta * softmax_kl(clean_logits, adv_logits).mean()


def mart_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, lam: float) -> Tensor:
    """MART: boosted CE on ``x'`` plus ``lambda KL(f(x) || f(x')) (1 - f_y(x))``, batch mean."""
    adv_probs = F.softmax(adv_logits, dim=1)
    masked = adv_probs.scatter(1, y[:, None], -1.0)  # the strongest wrong class
    wrong = masked.max(dim=1).values
    bce = F.cross_entropy(adv_logits, y, reduction="none") - torch.log(1.0001 - wrong + 1e-12)
    p_true = F.softmax(clean_logits, dim=1).gather(1, y[:, None]).squeeze(1)
    reg = softmax_kl(clean_logits, adv_logits) * (1.0000001 - p_true)
    return (bce + lam * reg).mean()


def linf_ascent(
    objective: Callable[[Tensor], Tensor],
    x: Tensor,
    start: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
) -> Tensor:
    """Sign-gradient ascent of ``objective(x_adv)`` (a scalar) from ``start``, projected onto
    the L-inf ``eps``-ball around ``x`` and [0, 1] after every step."""
    x_adv = torch.min(torch.max(start, x - eps), x + eps).clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        with torch.no_grad():
            x_adv = x_adv + alpha * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)
    return x_adv.detach()


class AdversarialTraining(Defense):
    """Base of the adversarial-training submissions.

    Parameters every subclass has: ``eps`` (L-inf bound on [0, 1]), ``steps`` (inner steps),
    ``alpha`` (inner step size; ``None`` = ``2.5 eps / steps``, Madry et al.) and ``start``
    ("uniform": ``x + U(-eps, eps)``, "normal": ``x + 0.001 N(0, 1)`` as in the TRADES and
    MART code, "none"). Subclasses implement :meth:`objective` and may override
    :meth:`inner_objective` (default: CE on the adversarial example) and :meth:`budget`
    (default: the fixed parameters; MPAdvT samples them per minibatch).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "eps": 8 / 255,
        "steps": 3,
        "alpha": None,
        "start": "uniform",
    }

    def setup(self) -> None:
        p = self.params
        if "eps" in p and not 0 <= float(p["eps"]) <= 1:
            raise SubmissionError(f"eps must be in [0, 1] (pixel scale), got {p['eps']}")
        if "steps" in p and int(p["steps"]) < 1:
            raise SubmissionError(f"steps must be >= 1, got {p['steps']}")
        if p.get("start", "none") not in ("uniform", "normal", "none"):
            raise SubmissionError("start must be uniform, normal or none")

    # -- what subclasses choose --------------------------------------------------------------
    def budget(self) -> tuple[float, int, float, str]:
        """(eps, steps, alpha, start) of the inner attack for the next minibatch (0 steps and
        no start: the minibatch trains clean, MPAdvT's coin)."""
        p = self.params
        eps, steps = float(p["eps"]), int(p["steps"])
        alpha = float(p["alpha"]) if p["alpha"] is not None else 2.5 * eps / steps
        return eps, steps, alpha, str(p["start"])

    #: Whether the defense trains multi-label models (BCE on every label): Madry and MPAdvT
    #: do (Xu et al. Table 5, CheXNet); MAAdvT, TRADES and MART are defined for classes.
    multi_label_ok: ClassVar[bool] = False

    def inner_objective(self, model: nn.Module, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        """The function of ``x_adv`` the inner attack maximises (default: summed CE, or BCE
        on every label for a multi-label task)."""
        multi = y.ndim == 2
        return lambda x_adv: attack_loss(model(x_adv), y, multi)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        """The training loss given clean and adversarial inputs (model in train mode)."""
        raise NotImplementedError

    # -- the hook ----------------------------------------------------------------------------
    def adversarial(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The inner maximisation for one minibatch (model in eval mode, parameters frozen)."""
        eps, steps, alpha, start = self.budget()
        gen = self.generator(x.device)
        if start == "uniform":
            noise = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            x0 = x + (2 * noise - 1) * eps
        elif start == "normal":
            x0 = x + 0.001 * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        else:
            x0 = x
        was_training = model.training
        model.eval()
        try:
            with frozen_parameters(model):
                x_adv = linf_ascent(
                    self.inner_objective(model, x, y), x, x0, eps=eps, alpha=alpha, steps=steps
                )
        finally:
            model.train(was_training)
        return x_adv

    def train(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        """Training hook: the loss of the minibatch ``(x, y)`` (float32 NCHW in [0, 1])."""
        if y.ndim != 1 and not self.multi_label_ok:
            raise SubmissionError(
                f"{type(self).__name__} supports single-label tasks only (class-index labels)"
            )
        x_adv = self.adversarial(model, x, y)
        return self.objective(model, x, x_adv, y)


__all__ = [
    "AdversarialTraining",
    "linf_ascent",
    "maadvt_loss",
    "mart_loss",
    "pgd_at_loss",
    "softmax_kl",
    "trades_loss",
]
