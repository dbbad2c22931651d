"""PGD adversarial training (Madry et al. 2018; Xu et al. 2021 Sec. 4.5, eq. 6, "Standard")."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.defenses import DefenseMeta
from benchmark.defenses.adversarial_training import AdversarialTraining, pgd_at_loss


class PGDAdversarialTraining(AdversarialTraining):
    """Minimise CE on PGD examples at a fixed eps and step count (eq. 6)."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        reference="https://arxiv.org/abs/1706.06083 (Madry et al. 2018, eq. 2.1); "
        "xu2021_evaluating_robustness.md Sec. 4.5 eq. 6",
        version="1.0",
        license="MIT",
        authors=(
            "Madry, Makelov, Schmidt, Tsipras and Vladu (method)",
            "MedRobustBench (implementation)",
        ),
        name="PGD adversarial training (Madry et al.)",
        paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR "
        "2018; Xu et al. 2021 Sec. 4.5 eq. 6 ('Standard')",
        threat_models=("adaptive", "transfer", "black_box"),
        description="PGD adversarial training: CE on PGD examples, fixed eps and steps",
    )
    defaults = {"eps": 8 / 255, "steps": 7, "alpha": None, "start": "uniform"}

    multi_label_ok = True

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        return pgd_at_loss(model(x_adv), y)
