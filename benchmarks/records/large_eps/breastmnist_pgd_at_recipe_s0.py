"""Diagnostic: which BreastMNIST test images the PGD-AT recipe model keeps at 64/255, under
PGD-10 (the version-1 sanity attack) and APGD-CE with 100 steps on PGD-10's survivors."""

import time

import numpy as np
import torch

from benchmark.api import load_model
from benchmark.attacks.base import build_attack
from benchmark.datasets.base import load_split

torch.set_num_threads(1)
m = load_model(
    "breastmnist", "resnet18", defense="pgd_at", defense_params={"steps": 7}, device="cpu"
)
s = load_split("breastmnist", "test")
x = s.images.float().div(255.0)
y = s.labels
with torch.no_grad():
    clean = m(x).argmax(1)
benign_share = (clean == 1).float().mean().item()
print("clean acc", (clean == y).float().mean().item(), "pred benign share", benign_share)
t = time.time()
pgd = build_attack("pgd", m, eps=64 / 255, steps=10, seed=0)
xa = pgd(x, y, seed=0)
with torch.no_grad():
    pa = m(xa).argmax(1)
ok = pa == y
by_class = np.bincount(y[ok].numpy(), minlength=2)
print("pgd10 64/255 acc", ok.float().mean().item(), "survivors by class", by_class, end=" ")
print(f"{time.time() - t:.0f}s")
idx = torch.nonzero(ok).flatten()
for name, kw in (("apgd_ce", {"steps": 100}),):
    t = time.time()
    a = build_attack(name, m, eps=64 / 255, seed=0, **kw)
    xb = a(x[idx], y[idx], seed=0)
    with torch.no_grad():
        pb = m(xb).argmax(1)
    kept = int((pb == y[idx]).sum())
    print(name, "on PGD-10 survivors: still correct", kept, "of", len(idx), end=" ")
    print(f"{time.time() - t:.0f}s")
    with torch.no_grad():
        logits = m(xb)
    print("margins of survivors", (logits[:, 1] - logits[:, 0])[pb == y[idx]][:10].tolist())
