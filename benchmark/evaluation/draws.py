"""Worst-of-draws scoring of a randomized defense.

A randomized defense gives a different answer to the same image on every call. One draw per
image credits the defense with every lucky draw; a persistent attacker submits the image again
until it is misclassified (Croce & Hein's AutoAttack, PR #105; DiffHammer's N-evaluation). So
the adaptive protocol (``docs/protocol.md``) scores every image ``R`` times with independent
draws of the defense's randomness and counts it as correct only if every answer is right. The
single-draw figure (the first draw, the one a one-shot evaluation reports) is kept beside it.

Draw ``r`` restarts the defense's random streams from :func:`draw_seed` ``(seed, r)``; draw 0
uses ``seed`` itself, so the single-draw figure is exactly what a one-draw run reports.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from benchmark.datasets.base import ImageSplit
from benchmark.evaluation.defended import apply_votes, voting_module
from benchmark.metrics.adversarial import correct_mask
from benchmark.metrics.base import Predictions, scalar, wilson_interval
from benchmark.models.inference import predict_images
from benchmark.results.outcomes import outcomes_block


def draw_seed(seed: int, r: int) -> int:
    """Seed of the defense's randomness for draw ``r`` (draw 0 is the run seed itself)."""
    return seed if r == 0 else (seed * 1_000_003 + 7919 * r) % (2**63 - 1)


def craft_seed(batch_seed: int) -> int:
    """Seed of a randomized defense's draws while an attack crafts one batch on it (from the
    batch's own seed): never a scoring draw's seed (:func:`draw_seed`), so an attack does not
    see the noise its examples are then scored with, and a batch crafts the same whether the
    batches before it ran in this process or were resumed from the cache."""
    return (batch_seed * 1_000_003 + 104_729) % (2**63 - 1)


def effective_draws(scorer: torch.nn.Module, draws: int) -> int:
    """``draws`` for a randomized defense's pipeline, 1 for anything deterministic."""
    defense = getattr(scorer, "defense", None)
    return draws if defense is not None and defense.meta.randomized else 1


def worst_of(preds: list[Predictions]) -> Predictions:
    """One prediction per image from several draws: the first wrong draw's answer where any
    draw is wrong (so the image counts as an error), else the first draw's."""
    first = preds[0]
    if len(preds) == 1:
        return first
    correct = np.stack([correct_mask(p) for p in preds])  # (R, N)
    pick = np.where(correct.all(axis=0), 0, np.argmin(correct, axis=0))
    rows = np.arange(first.n)
    probs = np.stack([p.probs for p in preds])[pick, rows]
    abstained = None
    if any(p.abstained is not None for p in preds):
        flags = np.stack(
            [p.abstained if p.abstained is not None else np.zeros(p.n, dtype=bool) for p in preds]
        )
        abstained = flags[pick, rows]
    return replace(first, probs=probs, abstained=abstained)


def score_draws(
    scorer: torch.nn.Module,
    images: torch.Tensor,
    split: ImageSplit,
    *,
    seed: int,
    draws: int,
    batch_size: int = 512,
) -> tuple[Predictions, dict[str, Any] | None, dict[str, Any] | None]:
    """Score ``images`` (standing for ``split``'s samples) through ``scorer`` ``draws`` times.

    Returns:
        The worst-of-draws predictions, the first draw's vote report (voting defenses; None
        otherwise) and the ``draws`` record (None for one draw): ``R``, the single-draw
        accuracy and per-image outcomes, and the accuracy of every draw.
    """
    defense = getattr(scorer, "defense", None)
    voting = voting_module(scorer)
    preds: list[Predictions] = []
    report = None
    for r in range(draws):
        if defense is not None:
            defense.reseed(draw_seed(seed, r))
        if voting is not None:
            voting.take_votes()  # drop the votes of earlier forwards (probes, other draws)
        pred = predict_images(scorer, images, split, batch_size=batch_size, seed=seed)
        pred, votes = apply_votes(scorer, pred, split.labels)
        if r == 0:
            report = votes
        preds.append(pred)
    if defense is not None:
        defense.reseed(seed)
    combined = worst_of(preds)
    if draws == 1:
        return combined, report, None
    single = correct_mask(preds[0])
    k, n = int(single.sum()), int(single.size)
    record = {
        "R": draws,
        "rule": "an image counts as correct only if all R draws classify it correctly",
        "single_draw_accuracy": scalar(k / max(n, 1), n, wilson_interval(k, n), "wilson"),
        "single_draw_outcomes": outcomes_block(single),
        "accuracy_per_draw": [float(correct_mask(p).mean()) for p in preds],
    }
    return combined, report, record
