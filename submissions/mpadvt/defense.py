"""MPAdvT: Multi-Perturbations Adversarial Training (Xu et al. 2021, Sec. 4.5, Algorithm 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from benchmark.defenses import DefenseMeta, SubmissionError
from benchmark.defenses.adversarial_training import AdversarialTraining, pgd_at_loss


class MPAdvT(AdversarialTraining):
    """Per minibatch (Algorithm 1, lines 4-6): p ~ U(0, 1), eps ~ U(eps_low, eps_high),
    T_I ~ U{steps_low, ..., steps_high}. When p >= adv_threshold (0.5, line 8) the batch is
    attacked: a uniform random start (line 9) and T_I sign-gradient steps of size
    alpha_I = 2.5 eps / T_I (unstated in the paper; Madry's rule), projected onto the eps-ball
    (lines 10-12). Otherwise it stays clean (the if closes at line 13, after the inner loop).
    Then CE on the result (lines 14-15)."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        reference="xu2021_evaluating_robustness.md Sec. 4.5, Algorithm 1",
        version="2.0",
        license="MIT",
        authors=("Xu, Liu, Zhang et al. (method)", "MedRobustBench (implementation)"),
        name="MPAdvT: Multi-Perturbations Adversarial Training",
        paper="Xu et al., Towards evaluating the robustness of deep diagnostic models by "
        "adversarial attack, MedIA 2021, Sec. 4.5, Algorithm 1",
        threat_models=("adaptive", "transfer", "black_box"),
        description="MPAdvT: adversarial training with eps and steps sampled per minibatch",
    )
    defaults = {
        "eps_low": 0.01,
        "eps_high": 0.04,
        "steps_low": 1,
        "steps_high": 5,
        "adv_threshold": 0.5,
    }

    def setup(self) -> None:
        super().setup()
        p = self.params
        if not 0 <= float(p["eps_low"]) <= float(p["eps_high"]) <= 1:
            raise SubmissionError("need 0 <= eps_low <= eps_high <= 1")
        if not 1 <= int(p["steps_low"]) <= int(p["steps_high"]):
            raise SubmissionError("need 1 <= steps_low <= steps_high")
        if not 0 <= float(p["adv_threshold"]) <= 1:
            raise SubmissionError("need 0 <= adv_threshold <= 1 (1: never attacked, 0: always)")
        self.last_budget: tuple[float, int, float, str] | None = None

    def budget(self) -> tuple[float, int, float, str]:
        p = self.params
        gen = self.generator("cpu")
        u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        lo, hi = float(p["eps_low"]), float(p["eps_high"])
        eps = lo + (hi - lo) * u[1]
        steps = int(
            torch.randint(int(p["steps_low"]), int(p["steps_high"]) + 1, (1,), generator=gen)
        )
        if u[0] < float(p["adv_threshold"]):  # line 8: p < 0.5, the batch trains clean
            self.last_budget = (eps, 0, 0.0, "none")
        else:
            self.last_budget = (eps, steps, 2.5 * eps / steps, "uniform")
        return self.last_budget

    multi_label_ok = True

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        return pgd_at_loss(model(x_adv), y)
