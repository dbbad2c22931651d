"""Pick MDDA's TV weight gamma on a validation split (the paper gives none).

MDDA lowers clean accuracy from 82.0 to 69.1 % on ISIC 2019 with N = 5 blocks (Table 2), a
ratio of 0.843. This script measures the validation accuracy of a zoo model behind MDDA for a
grid of gamma and prints each ratio to the bare model's; the README records the run and the
chosen value. Usage:

    BENCH_DATA_DIR=../shared/data python submissions/mdda/select_gamma.py pneumoniamnist
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from benchmark.datasets.base import load_split
from benchmark.defenses import DefendedModel, read_submission
from benchmark.models.inference import predict
from benchmark.models.zoo import ModelZoo

TARGET = 69.1 / 82.0


def main(
    dataset: str,
    grid: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0, 120.0, 160.0, 320.0, 640.0),
    scales: tuple[str, ...] = ("symmetric", "unit"),
) -> None:
    """Print validation accuracy and the ratio to the bare model for every gamma."""
    model, _ = ModelZoo().load(f"resnet18_{dataset}_28px_s0")
    val = load_split(dataset, "val", size=28)
    base = float((predict(model, val).predicted == val.labels.numpy()).mean())
    print(f"{dataset} val n={len(val)}: bare accuracy {base:.4f}; target ratio {TARGET:.3f}")
    sub = read_submission(Path(__file__).parent)
    for scale in scales:
        for gamma in grid:
            defense = sub.build(seed=0, gamma=gamma, pixel_scale=scale)
            pred = predict(DefendedModel(model, defense), val).predicted
            acc = float((pred == val.labels.numpy()).mean())
            print(f"  {scale:<9} gamma {gamma:>5}: accuracy {acc:.4f}  ratio {acc / base:.3f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main(sys.argv[1] if len(sys.argv) > 1 else "pneumoniamnist")
