"""Square from the reference AutoAttack code (``pyautoattack``), as a black-box attack of its own.

AutoAttack's standard version ends with Square (Andriushchenko et al., ECCV 2020), a
score-based random search that needs no gradient. Against a randomized defense the
reference's ``rand`` version drops it and keeps the two EOT-APGD runs, so the adaptive protocol
(``docs/protocol.md``) runs Square separately, on the deployed pipeline: every query is answered
by one fresh draw of the defense, exactly as a user of the deployed model would be answered.
The settings are the standard version's Square: 5000 queries, ``p_init`` 0.8, the margin loss,
one restart, no rescaled schedule (``pyautoattack.AutoAttack.__init__``).

It is registered as ``square_ref`` (knowledge ``score-based``), so the evaluation runs it on
the deployed pipeline and labels it ``black_box``; ``square`` stays torchattacks' version.
"""

from __future__ import annotations

from typing import Any

import pyautoattack
import torch
from pyautoattack.square import SquareAttack
from torch import Tensor

from benchmark.attacks.base import Attack, AttackMeta, frozen_parameters, register_attack
from benchmark.errors import ConfigError


@register_attack(
    "square_ref",
    AttackMeta(
        description="Square (Andriushchenko et al. 2020), reference AutoAttack code: "
        "5000 queries, margin loss, the standard version's settings",
        knowledge="score-based",
        reference="https://arxiv.org/abs/1912.00049 (AutoAttack standard version's Square)",
        implementation="pyautoattack",
    ),
)
class ReferenceSquare(Attack):
    """Square L-inf from ``pyautoattack`` with AutoAttack's standard settings.

    Parameters: ``n_queries`` (5000), ``p_init`` (0.8), ``n_restarts`` (1). The reference's
    seed is drawn per call from the RNG the base class seeds with the batch seed.
    """

    defaults = {"n_queries": 5000, "p_init": 0.8, "n_restarts": 1}

    def setup(self) -> None:
        if int(self.params["n_queries"]) < 1 or int(self.params["n_restarts"]) < 1:
            raise ConfigError("square_ref n_queries and n_restarts must be >= 1")
        if not 0 < float(self.params["p_init"]) <= 1:
            raise ConfigError("square_ref p_init must be in (0, 1]")

    def build(self, device: torch.device | str = "cpu", seed: int | None = None) -> SquareAttack:
        """The configured reference attack."""
        return SquareAttack(
            self.model,
            norm="Linf",
            n_queries=int(self.params["n_queries"]),
            eps=self.eps,
            p_init=float(self.params["p_init"]),
            n_restarts=int(self.params["n_restarts"]),
            seed=self.seed if seed is None else seed,
            verbose=False,
            loss="margin",
            resc_schedule=False,
            device=device,
        )

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        square = self.build(device=x.device, seed=seed)
        with frozen_parameters(self.model), torch.no_grad():
            x_adv = square.perturb(x, y)
        return x_adv.clamp(0, 1)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["reference"] = {
            "package": "pyautoattack",
            "package_version": pyautoattack.__version__,
            "loss": "margin",
            "resc_schedule": False,
        }
        return cfg

    def implementation(self) -> str:
        return f"pyautoattack.square.SquareAttack {pyautoattack.__version__} (fra31/auto-attack)"
