"""Figure 9: the reference AutoAttack (``autoattack_ref``, pyautoattack) against our torchattacks
composition (``autoattack``), and its CPU cost at the published budget.

* ``equivalence``: a tiny CNN trained 5 epochs (with ``--resnet`` also a ResNet-18 trained 2)
  on real BreastMNIST (K = 2) and RetinaMNIST (K = 5), the first 64 test images, 2/255 and
  8/255, reduced budget (10 iterations, Square 100 queries) for both: robust accuracy of each
  and of FGSM, images only one of them breaks, and how many images each reference sub-attack
  left. The reference should be at least as strong.
* ``cost``: ``autoattack_ref`` at the published budget (100 iterations, Square 5000 queries)
  on the first 16 BreastMNIST test images with a ResNet-18 trained 2 epochs, 8/255, on 2
  threads: wall time per sub-attack, images left for each, and the time extrapolated to the
  156 test images at the same survival rates. ``--worst-case`` adds a run at 0.1/255, where
  nearly every image survives to Square (the regime of a robust model).

Usage: python benchmarks/autoattack_ref.py [equivalence] [cost] [--resnet] [--worst-case]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DATA, report

from benchmark.attacks import build_attack
from benchmark.datasets import load_split
from benchmark.models.zoo import ModelZoo
from benchmark.training import TrainConfig, train_model

EPS = 8 / 255
TEST_SIZE = {"breastmnist": 156}
EPOCHS = {"tiny_cnn": 5, "resnet18": 2}


def trained(zoo: ModelZoo, dataset: str, arch: str, epochs: int = 2):
    entry = train_model(
        TrainConfig(dataset=dataset, arch=arch, epochs=epochs), data_dir=DATA, zoo=zoo,
        progress=False,
    )  # fmt: skip
    return zoo.load(entry.model_id)[0].eval()


def images(dataset: str, n: int):
    return next(load_split(dataset, "test", data_dir=DATA).batches(n))


def robust(model, x_adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def equivalence(zoo: ModelZoo, n: int = 64, archs: tuple[str, ...] = ("tiny_cnn",)) -> None:
    small = {"steps": 10, "n_queries": 100}
    for arch in archs:
        for dataset in ("breastmnist", "retinamnist"):
            model = trained(zoo, dataset, arch, epochs=EPOCHS[arch])
            x, y = images(dataset, n)
            clean = robust(model, x, y)
            values = {
                "setting": f"{arch} {dataset} {EPOCHS[arch]} epochs, {n} images, steps 10, "
                "Square 100",
                "clean_acc": round(float(clean.float().mean()), 4),
            }
            for eps in (2 / 255, EPS):
                label = f"eps{round(eps * 255)}"
                out = {}
                for name in ("fgsm", "autoattack", "autoattack_ref"):
                    params = {} if name == "fgsm" else small
                    attack = build_attack(name, model, eps=eps, seed=0, **params)
                    t0 = time.perf_counter()
                    out[name] = robust(model, attack(x, y), y)
                    values[f"{label}_{name}_seconds"] = round(time.perf_counter() - t0, 1)
                    if name == "autoattack_ref":
                        rec = attack.records[-1]
                        values[f"{label}_ref_robust_after"] = rec.robust_after
                        values[f"{label}_ref_flags"] = rec.flags
                for name, r in out.items():
                    values[f"{label}_{name}_robust_acc"] = round(float(r.float().mean()), 4)
                ta, ref = out["autoattack"], out["autoattack_ref"]
                values[f"{label}_broken_only_by_ref"] = int((ta & ~ref).sum())
                values[f"{label}_broken_only_by_torchattacks"] = int((ref & ~ta).sum())
            report("autoattack_ref_equivalence", values)


def cost(zoo: ModelZoo, n: int = 16, worst_case: bool = False) -> None:
    model = trained(zoo, "breastmnist", "resnet18")
    x, y = images("breastmnist", n)
    total = TEST_SIZE["breastmnist"]
    for eps in (EPS, 0.1 / 255) if worst_case else (EPS,):
        attack = build_attack("autoattack_ref", model, eps=eps, seed=0)  # published budget
        t0 = time.perf_counter()
        attack(x, y)
        seconds = time.perf_counter() - t0
        rec = attack.records[-1]
        label = f"eps{round(eps * 255, 2)}-255"
        report(
            "autoattack_ref_cost",
            {
                "setting": f"resnet18 breastmnist 2 epochs, {label}, full budget, {n} images",
                "seconds": round(seconds, 1),
                "seconds_per_subattack": rec.seconds,
                "images_left_after": rec.robust_after,
                "extrapolated_seconds_156_images": round(seconds * total / n),
            },
        )


def main() -> None:
    torch.set_num_threads(2)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    parts = args or ["equivalence", "cost"]
    with tempfile.TemporaryDirectory() as tmp:
        zoo = ModelZoo(Path(tmp))
        if "equivalence" in parts:
            archs = ("tiny_cnn", "resnet18") if "--resnet" in sys.argv else ("tiny_cnn",)
            equivalence(zoo, archs=archs)
        if "cost" in parts:
            cost(zoo, worst_case="--worst-case" in sys.argv)


if __name__ == "__main__":
    main()
