"""MAAdvT: Misclassification-Aware Adversarial Training (Xu et al. 2021, Sec. 4.5, eqs. 7-10,
Algorithm 2)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.defenses import DefenseMeta
from benchmark.defenses.adversarial_training import AdversarialTraining, maadvt_loss


class MAAdvT(AdversarialTraining):
    """x' = PGD(x, y, eps, alpha_I, T_I) (line 5); loss CE(C(x'), y) + lambda KL(C(x) ||
    C(x')) (1 - C_y(x)) (lines 6-7, eqs. 8 and 10). The paper states neither lambda nor the
    PGD budget: lambda = 6 is MART's (the method it builds on), eps 8/255 with 10 steps."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        reference="xu2021_evaluating_robustness.md Sec. 4.5, eqs. 7-10, Algorithm 2",
        version="1.0",
        license="MIT",
        authors=("Xu, Liu, Zhang et al. (method)", "MedRobustBench (implementation)"),
        name="MAAdvT: Misclassification-Aware Adversarial Training",
        paper="Xu et al., Towards evaluating the robustness of deep diagnostic models by "
        "adversarial attack, MedIA 2021, Sec. 4.5, eqs. 7-10, Algorithm 2",
        threat_models=("adaptive", "transfer", "black_box"),
        description="MAAdvT: CE on PGD examples plus a misclassification-weighted KL",
    )
    defaults = {"eps": 8 / 255, "steps": 10, "alpha": None, "start": "uniform", "lam": 6.0}

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        return maadvt_loss(model(x), model(x_adv), y, float(self.params["lam"]))
