"""What every figure of :mod:`benchmark.diagnostics` shares: class names, predictions and
their labels, a pass described in words, and a sprite figure's index entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmark.diagnostics import images
from benchmark.results.naming import eps_label


@dataclass
class Drawn:
    """The figures and, beyond the gallery's, how many images' examples are not the run's own
    and how many of those were attacked by this call."""

    figures: list[dict[str, Any]] = field(default_factory=list)
    recrafted: int = 0
    attacked: int = 0


def class_names(plan: Any) -> list[str]:
    """The class names of the run's dataset (its ids where it has none)."""
    meta = plan.split.meta
    names = list(getattr(meta, "class_names", ()) or ())
    k = len(names) or int(plan.split.labels.max()) + 1
    return names if names else [str(i) for i in range(k)]


def predict(module: torch.nn.Module, x: torch.Tensor, plan: Any) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and its probability for each image. The run's defense is reseeded
    first (the scorer may be a wrapper without a ``defense`` attribute of its own), so the
    draws do not depend on what ran before in the process."""
    if plan.defense is not None:
        plan.defense.reseed(plan.config.seed)
    with torch.no_grad():
        logits = module(x.to(plan.device)).float().cpu()
    prob = logits.softmax(1)
    conf, pred = prob.max(1)
    return pred.numpy(), conf.numpy()


def label(names: list[str], pred: int, conf: float, truth: int) -> dict[str, Any]:
    wrong = int(pred) != int(truth)
    return {"text": f"{names[int(pred)]} {100 * conf:.0f}%", "wrong": wrong}


def what(p: Any) -> str:
    """An attack pass in words: attack, eps, steps and threat model (for captions)."""
    steps = p.attack.params.get("steps")
    extra = f", {steps} steps" if steps else ""
    return f"{p.cell.attack} at L-inf eps {eps_label(p.cell.eps)}{extra} ({p.threat_model.value})"


def sprite_figure(fid: str, tiles: list[list[Any]], size: int, **meta: Any) -> dict[str, Any]:
    data, geometry = images.sprite(
        [[t[0] if t else None for t in row] for row in tiles], images.zoom(size)
    )
    cells = [[(t[1] if t else None) for t in row] for row in tiles]
    return {
        "id": fid,
        "sprite": f"{fid}.png",
        "geometry": geometry,
        "cells": cells,
        "_files": {f"{fid}.png": data},
        **meta,
    }


def layer_shape(layers: dict[str, Any], key: str) -> str:
    s = layers["shapes"].get(layers[key])
    return "x".join(str(v) for v in s) if s else "?"


def first_per_class(labels: torch.Tensor) -> list[int]:
    if labels.dim() > 1:
        return list(range(len(labels)))
    firsts, rest, seen = [], [], set()
    for i, v in enumerate(labels.tolist()):
        (rest if v in seen else firsts).append(i)
        seen.add(v)
    return firsts + rest


def fit(tile: np.ndarray, size: int) -> np.ndarray:
    """A feature-map tile enlarged (nearest) to the image size, so the sprite's grid is even."""
    f = max(1, size // tile.shape[0])
    big = np.repeat(np.repeat(tile, f, 0), f, 1)
    out = np.full((size, size, 3), 255, np.uint8)
    out[: big.shape[0], : big.shape[1]] = big[:size, :size]
    return out


__all__ = [
    "Drawn",
    "class_names",
    "first_per_class",
    "fit",
    "label",
    "layer_shape",
    "predict",
    "sprite_figure",
    "what",
]
