"""MPAdvT: Multi-Perturbations Adversarial Training (Xu et al. 2021, Sec. 4.5, Algorithm 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from benchmark.defenses import DefenseMeta, SubmissionError
from benchmark.defenses.adversarial_training import AdversarialTraining, pgd_at_loss


class MPAdvT(AdversarialTraining):
    """Per minibatch (Algorithm 1, lines 4-6): p ~ U(0, 1), eps ~ U(eps_low, eps_high),
    T_I ~ U{steps_low, ..., steps_high}; a uniform random start when p >= start_threshold
    (0.5, lines 8-9);
    T_I sign-gradient steps of size alpha_I = 2.5 eps / T_I (unstated in the paper; Madry's
    rule), projected onto the eps-ball (line 11); then CE on the result (line 15)."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        reference="xu2021_evaluating_robustness.md Sec. 4.5, Algorithm 1",
        version="1.0",
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
        "start_threshold": 0.5,
    }

    def setup(self) -> None:
        super().setup()
        p = self.params
        if not 0 <= float(p["eps_low"]) <= float(p["eps_high"]) <= 1:
            raise SubmissionError("need 0 <= eps_low <= eps_high <= 1")
        if not 1 <= int(p["steps_low"]) <= int(p["steps_high"]):
            raise SubmissionError("need 1 <= steps_low <= steps_high")
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
        start = "uniform" if u[0] >= float(p["start_threshold"]) else "none"
        self.last_budget = (eps, steps, 2.5 * eps / steps, start)
        return self.last_budget

    multi_label_ok = True

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        return pgd_at_loss(model(x_adv), y)
