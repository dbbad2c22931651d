"""MART (Wang et al., ICLR 2020, eq. 7)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.defenses import DefenseMeta
from benchmark.defenses.adversarial_training import AdversarialTraining, mart_loss


class MART(AdversarialTraining):
    """x' from PGD on CE started at x + 0.001 N(0, 1) (the authors' code); loss
    BCE(f(x'), y) + lambda KL(f(x) || f(x')) (1 - f_y(x)), lambda = 6 (the authors' code)."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        reference="https://openreview.net/forum?id=rklOg6EFwS eq. 7",
        version="1.0",
        license="MIT",
        authors=("Wang, Zou, Yi, Bailey, Ma and Gu (method)", "MedRobustBench (implementation)"),
        name="MART",
        paper="Wang et al., Improving Adversarial Robustness Requires Revisiting Misclassified "
        "Examples, ICLR 2020, eq. 7",
        threat_models=("adaptive", "transfer", "black_box"),
        description="MART: boosted CE on adversarial examples plus a misclassification-aware KL",
    )
    defaults = {"eps": 8 / 255, "steps": 10, "alpha": None, "start": "normal", "lam": 6.0}

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        return mart_loss(model(x), model(x_adv), y, float(self.params["lam"]))
