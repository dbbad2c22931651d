"""Score-based black-box attacks: Square (Andriushchenko et al. 2020, wrapped from torchattacks)
and SPSA (Uesato et al. 2018, our own: early stop, queries kept in [0, 1])."""

from __future__ import annotations

import torch
import torchattacks
from torch import Tensor

from benchmark.attacks.base import Attack, AttackError, AttackMeta, register_attack
from benchmark.attacks.reference_autoattack import margin_loss
from benchmark.attacks.torchattacks_base import TA, TorchAttacksAttack
from benchmark.errors import ConfigError


@register_attack(
    "square",
    AttackMeta(
        description="Square attack (Andriushchenko et al. 2020): score-based random search",
        knowledge="score-based",
        reference="https://arxiv.org/abs/1912.00049",
        implementation=TA,
    ),
)
class SquareAttack(TorchAttacksAttack):
    """Square attack, L-inf, margin loss."""

    ta_class = "Square"
    defaults = {"n_queries": 5000, "n_restarts": 1, "p_init": 0.8}

    def build(self):
        p = self.params
        return torchattacks.Square(
            self.model,
            norm="Linf",
            eps=self.eps,
            n_queries=int(p["n_queries"]),
            n_restarts=int(p["n_restarts"]),
            p_init=float(p["p_init"]),
            seed=self.seed,
        )


@register_attack(
    "spsa",
    AttackMeta(
        description="SPSA (Uesato et al. 2018): gradient-free finite differences, early stop "
        "(MedRDF Sec. V-C)",
        knowledge="score-based",
        reference="https://arxiv.org/abs/1802.05666 (Alg. 1); MedRDF Sec. V-C",
        implementation="medrobustbench",
    ),
)
class SPSAAttack(Attack):
    """SPSA (Uesato et al. 2018, Alg. 1) on the margin loss ``z_y - max_{j != y} z_j``, L-inf.

    Per iteration and image: ``nb_sample`` Rademacher directions ``v``, the finite difference
    ``(l(x + delta v) - l(x - delta v)) / (2 delta) v`` averaged into a gradient estimate, one
    Adam step of size ``lr`` on the perturbation, projected onto the eps-ball and [0, 1].
    Defaults are MedRDF's settings (lr 0.01, delta 0.01, 100 iterations, 128 samples).

    Unlike torchattacks' SPSA (which returns the last iterate, and queries ``x +- delta v``
    outside [0, 1]): every query is clipped to [0, 1], so a defense only ever sees valid
    images; an image stops once an iterate is misclassified and that iterate is returned (the
    early stop of Uesato et al. and MedRDF), so an image fooled mid-run is not lost again; an
    image never fooled returns its last iterate. ``last_queries`` holds the queries per image.
    """

    defaults = {"delta": 0.01, "lr": 0.01, "nb_iter": 100, "nb_sample": 128, "max_batch_size": 64}

    def setup(self) -> None:
        p = self.params
        if int(p["nb_iter"]) < 1 or int(p["nb_sample"]) < 1 or int(p["max_batch_size"]) < 1:
            raise ConfigError("attack 'spsa': nb_iter, nb_sample and max_batch_size must be >= 1")
        if float(p["delta"]) <= 0 or float(p["lr"]) <= 0:
            raise ConfigError("attack 'spsa': delta and lr must be > 0")
        self.last_queries: Tensor | None = None

    def _margin(self, x: Tensor, y: Tensor) -> Tensor:
        """``z_y - max_{j != y} z_j`` per image (negative: misclassified), in chunks."""
        step = int(self.params["max_batch_size"])
        with torch.no_grad():
            return torch.cat(
                [
                    -margin_loss(self.model(x[i : i + step]), y[i : i + step])
                    for i in range(0, len(x), step)
                ]
            )

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        if getattr(self.model, "multi_label", False):
            raise AttackError("attack 'spsa' needs single-label class indices (margin loss)")
        p = self.params
        delta, n_s = float(p["delta"]), int(p["nb_sample"])
        n = len(x)
        queries = torch.zeros(n, dtype=torch.int64)
        x_adv = x.clone()
        margin = self._margin(x, y)
        queries += 1
        active = margin >= 0  # misclassified clean images are done
        dx = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.Adam([dx], lr=float(p["lr"]))
        for _ in range(int(p["nb_iter"])):
            idx = active.nonzero().flatten()
            if len(idx) == 0:
                break
            base, yi = (x + dx.detach())[idx], y[idx]
            grad = torch.zeros_like(base)
            for _ in range(n_s):  # one direction per image at a time: memory of one batch
                v = torch.randint(0, 2, base.shape, device=x.device, dtype=x.dtype) * 2 - 1
                plus, minus = (base + delta * v).clamp(0, 1), (base - delta * v).clamp(0, 1)
                diff = self._margin(plus, yi) - self._margin(minus, yi)
                grad += (diff / (2 * delta)).view(-1, *([1] * (x.dim() - 1))) * v
            grad /= n_s
            queries[idx.cpu()] += 2 * n_s
            opt.zero_grad()
            g = torch.zeros_like(x)
            g[idx] = grad
            dx.grad = g
            opt.step()
            with torch.no_grad():
                dx.clamp_(-self.eps, self.eps)
                dx.copy_((x + dx).clamp(0, 1) - x)
            current = x + dx.detach()
            m = self._margin(current[idx], yi)
            queries[idx.cpu()] += 1
            x_adv[idx] = current[idx]
            fooled = m < 0
            active[idx[fooled]] = False  # early stop: keep the misclassified iterate
        self.last_queries = queries
        return x_adv
