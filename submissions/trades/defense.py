"""TRADES (Zhang et al., ICML 2019, eq. 5 and Algorithm 1)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from benchmark.defenses import DefenseMeta
from benchmark.defenses.adversarial_training import (
    AdversarialTraining,
    softmax_kl,
    trades_loss,
)


class TRADES(AdversarialTraining):
    """x' maximises KL(f(x) || f(x')) from x + 0.001 N(0, 1) (the authors' code); loss
    CE(f(x), y) + beta KL(f(x) || f(x')), beta = 6 (the paper's CIFAR-10 setting)."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        reference="https://arxiv.org/abs/1901.08573 eq. 5, Algorithm 1",
        version="1.0",
        license="MIT",
        authors=(
            "Zhang, Yu, Jiao, Xing, El Ghaoui and Jordan (method)",
            "MedRobustBench (implementation)",
        ),
        name="TRADES",
        paper="Zhang et al., Theoretically Principled Trade-off between Robustness and Accuracy, "
        "ICML 2019, eq. 5, Algorithm 1",
        threat_models=("adaptive", "transfer", "black_box"),
        description="TRADES: clean CE plus beta x KL between clean and adversarial outputs",
    )
    defaults = {"eps": 8 / 255, "steps": 10, "alpha": None, "start": "normal", "beta": 6.0}

    def inner_objective(self, model: nn.Module, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        with torch.no_grad():
            clean = model(x)
        return lambda x_adv: softmax_kl(clean, model(x_adv)).sum()

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        return trades_loss(model(x), model(x_adv), y, float(self.params["beta"]))
