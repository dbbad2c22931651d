"""Figure 1: attack overhead. PGD-k, APGD-k, FGNM and PGDNM-k wall time over k times the bare
forward+backward time of the same batch (the physical floor of a k-step gradient attack).
Target <= 1.15."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from common import best_time, report, test_batch, zoo_model

from benchmark.attacks.base import build_attack

K = 10


def main() -> None:
    torch.manual_seed(0)
    model = zoo_model()
    x, y = test_batch(n=128)

    def fwd_bwd() -> None:
        xr = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)

    base = best_time(fwd_bwd)
    values = {"bare_fwd_bwd_ms_per_image": round(1000 * base / len(x), 3)}
    for name, steps in (("pgd", K), ("apgd_ce", K), ("pgdnm", K), ("fgnm", 1), ("fgsm", 1)):
        params = {} if steps == 1 else {"steps": steps}
        attack = build_attack(name, model, eps=8 / 255, seed=0, **params)
        t = best_time(lambda a=attack: a(x, y, seed=0), repeat=2)
        values[f"{name}-{steps}_overhead (target <= 1.15)"] = round(t / (steps * base), 3)
    report("attack_overhead", values)


if __name__ == "__main__":
    main()
