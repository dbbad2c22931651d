"""Run attack cells on a model: batched, seeded, cached, checked, scored.

Each cell's adversarial examples are computed batch by batch with a per-batch seed derived from
the run seed and the batch's first index, checked by the attack base class (eps-ball, range,
finite), cached on disk (:mod:`benchmark.evaluation.cache`) and scored against the clean
predictions.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.attacks.base import (
    Attack,
    AttackContext,
    build_attack,
    perturbation_norms,
)
from benchmark.attacks.presets import AttackCell
from benchmark.datasets.base import ImageSplit
from benchmark.evaluation.cache import AdversarialCache, cache_key, indices_digest
from benchmark.evaluation.defended import voting_module
from benchmark.evaluation.draws import craft_seed, effective_draws, score_draws
from benchmark.metrics.adversarial import compute_adversarial_metrics, correct_mask
from benchmark.metrics.base import Predictions
from benchmark.models.base import ImageClassifier
from benchmark.models.inference import predict_images
from benchmark.models.pass_timer import PassTimer, PassTimes
from benchmark.results.naming import eps_label
from benchmark.results.outcomes import outcomes_block

logger = logging.getLogger(__name__)


@dataclass
class EarlierCost:
    """What the batches of a cell that an earlier, interrupted run finished had cost (kept
    with each batch in the cache), so a resumed cell's timing is the whole cell's: ``batches``
    resumed, their ``seconds`` and model pass ``times``, and how many of them were stored
    without their cost (``unknown``: by code older than this record)."""

    batches: int = 0
    seconds: float = 0.0
    times: PassTimes = field(default_factory=PassTimes)
    unknown: int = 0

    def add(self, meta: dict[str, Any]) -> None:
        """Count one batch found in the cache with the ``meta`` it was stored with
        (:func:`batch_cost`)."""
        self.batches += 1
        if "seconds" in meta:
            self.seconds += float(meta["seconds"])
            self.times += PassTimes.from_dict(meta.get("times") or {})
        else:
            self.unknown += 1

    def timing(self) -> dict[str, int]:
        """The timing fields a resumed cell adds to its results block."""
        out = {"resumed_batches": self.batches} if self.batches else {}
        return out | ({"resumed_batches_without_cost": self.unknown} if self.unknown else {})


def batch_cost(started: float, timer: PassTimer | None, before: PassTimes | None) -> dict[str, Any]:
    """What one batch cost since ``started`` (``time.perf_counter()``) and, with the run's
    ``timer`` and its times ``before`` the batch, the model passes it made: the ``meta`` a
    finished batch is cached with, which a resumed run counts (:meth:`EarlierCost.add`)."""
    cost: dict[str, Any] = {"seconds": time.perf_counter() - started}
    if timer is not None and before is not None:
        cost["times"] = timer.times.since(before)
    return cost


@dataclass
class CellRun:
    """Outcome of one attack cell."""

    cell: AttackCell
    attack: Attack
    pred: Predictions
    norms: dict[str, np.ndarray]
    seconds: float
    cached: bool
    votes: dict[str, Any] | None = None
    passes: PassTimes | None = None
    draws: dict[str, Any] | None = None
    undefended: Predictions | None = None
    earlier: EarlierCost | None = None

    def summary(self) -> dict[str, Any]:
        """The fields the sanity checks need."""
        return {
            "cell_id": self.cell.cell_id,
            "attack": self.cell.attack,
            "eps": self.cell.eps,
            "norm": self.attack.norm,
            "bounded": self.attack.bounded,
            "knowledge": self.attack.meta.knowledge,
            "steps": int(self.attack.params.get("steps", 1)),
            "params": {k: v for k, v in self.cell.params if k != "steps"},
        }


def batch_seed(seed: int, start: int) -> int:
    """Seed of the batch starting at sample ``start`` (independent of the order cells run)."""
    return (seed * 1_000_003 + start) % (2**63 - 1)


def build_cells(
    model: ImageClassifier, cells: list[AttackCell], seed: int, **overrides: Any
) -> list[Attack]:
    """Instantiate every cell's attack first, so a bad parameter fails before any work.

    ``overrides`` replace cell parameters (e.g. AutoAttack's version on a randomized defense);
    the attack's ``config()`` records them, the cell id does not change.
    """
    return [
        build_attack(c.attack, model, eps=c.eps, seed=seed, **{**c.param_dict, **overrides})
        for c in cells
    ]


def craft_key(
    model_sha256: str,
    split: ImageSplit,
    indices: torch.Tensor,
    attack: Attack,
    batch_size: int,
    key_extra: dict[str, Any] | None = None,
) -> str:
    """The cache key of an attack cell's examples: the attacked model, the data and the
    subset, the attack's full configuration, the batch size (it fixes the per-batch seeds)
    and, for an attack on a defense, what else determines the examples."""
    return cache_key(
        model=model_sha256,
        data=split.sha256,
        split=split.split,
        indices=indices_digest(indices),
        attack=attack.config(),
        batch_size=batch_size,
        **(key_extra or {}),
    )


def craft_cell(
    model: ImageClassifier,
    split: ImageSplit,
    cell: AttackCell,
    attack: Attack,
    *,
    indices: torch.Tensor,
    model_sha256: str,
    seed: int,
    batch_size: int,
    cache: AdversarialCache,
    context: AttackContext | None = None,
    progress: bool | None = None,
    key_extra: dict[str, Any] | None = None,
    timer: PassTimer | None = None,
    earlier: EarlierCost | None = None,
) -> tuple[torch.Tensor, bool]:
    """The adversarial examples of ``cell`` on every sample of ``split`` (from the cache, or
    computed batch by batch and cached) and whether they were cached.

    Each finished batch is kept with its cost (seconds, and the pass times of ``timer``, the
    run's timer on ``model``); a cell that resumes an interrupted one adds the cost of the
    batches it finds to ``earlier``.

    ``context`` is handed to :meth:`Attack.prepare` on a cache miss only, so a cached GAP or
    transfer cell costs no generator training and no surrogate loading. ``key_extra`` adds
    what else determines the examples (the defense and threat model of an adaptive attack) to
    the cache key; an oblivious attack leaves it out and shares the undefended run's examples.
    """
    crafted_on = getattr(model, "defense", None)  # each batch reseeds it (craft_seed)
    key = craft_key(model_sha256, split, indices, attack, batch_size, key_extra)
    shape = (len(split), *split.images.shape[1:])
    x_adv = cache.load(key, shape)
    if x_adv is not None:
        return x_adv, True
    if not attack.prepared and context is not None:
        if crafted_on is not None:  # e.g. GAP training through a randomized pipeline
            crafted_on.reseed(craft_seed(seed))
        attack.prepare(context)
        attack.prepared = True
    show = sys.stderr.isatty() if progress is None else progress
    chunks = []
    device = model.device
    n_batches = (len(split) + batch_size - 1) // batch_size
    resumed = 0
    with tqdm(total=n_batches, disable=not show, desc=cell.cell_id, unit="batch") as bar:
        for b, (x, y) in enumerate(split.batches(batch_size, device=device)):
            # Each batch has its own seed, so a batch finished before an interruption is the
            # batch a complete run computes: it is kept and the cell resumes after it.
            found = cache.load_batch_with_meta(key, b, tuple(x.shape))
            if found is None:
                before, t0 = (
                    dataclasses.replace(timer.times) if timer else None,
                    time.perf_counter(),
                )
                if crafted_on is not None:  # this batch's draws, whatever ran before it
                    crafted_on.reseed(craft_seed(batch_seed(seed, b * batch_size)))
                done = attack(x, y, seed=batch_seed(seed, b * batch_size)).cpu()
                if n_batches > 1:
                    cache.save_batch(key, b, done, meta=batch_cost(t0, timer, before))
            else:
                done, meta = found
                resumed += 1
                if earlier is not None:  # finished by an interrupted run: its cost counts
                    earlier.add(meta)
            chunks.append(done)
            bar.update(1)
    if resumed:
        logger.info("%s: resumed after %d of %d finished batches", cell.cell_id, resumed, n_batches)
    x_adv = torch.cat(chunks)
    cache.save(
        key,
        x_adv,
        {
            "cell": cell.cell_id,
            "attack": attack.config(),
            "model_sha256": model_sha256,
            "data_sha256": split.sha256,
        },
    )
    return x_adv, False


def run_cell(
    model: ImageClassifier,
    split: ImageSplit,
    cell: AttackCell,
    attack: Attack,
    *,
    indices: torch.Tensor,
    model_sha256: str,
    seed: int,
    batch_size: int,
    cache: AdversarialCache,
    context: AttackContext | None = None,
    progress: bool | None = None,
    score_model: torch.nn.Module | None = None,
    key_extra: dict[str, Any] | None = None,
    draws: int = 1,
    undefended_model: torch.nn.Module | None = None,
) -> CellRun:
    """Attack every sample of ``split`` (or load the cached result, see :func:`craft_cell`)
    and score it with ``score_model`` (default ``model``): the defended pipeline when a
    defense is evaluated. A randomized defense answers each image ``draws`` times and the
    image counts as robust only if every answer is right (:mod:`benchmark.evaluation.draws`).
    ``undefended_model`` (the base model behind a defense) also scores the same examples, so
    the defense's gain is read off one run (``CellRun.undefended``)."""
    start_time = time.perf_counter()
    earlier = EarlierCost()
    with PassTimer(model) as timer:
        x_adv, cached = craft_cell(
            model,
            split,
            cell,
            attack,
            indices=indices,
            model_sha256=model_sha256,
            seed=seed,
            batch_size=batch_size,
            cache=cache,
            context=context,
            progress=progress,
            key_extra=key_extra,
            timer=timer,
            earlier=earlier,
        )
    # A resumed cell's time and passes include the batches an interrupted run finished.
    seconds = time.perf_counter() - start_time + earlier.seconds
    times = timer.times + earlier.times
    clean_x = split.images.float().div(255.0)
    norms = {k: v.numpy() for k, v in perturbation_norms(clean_x, x_adv).items()}
    scorer = score_model if score_model is not None else model
    defense = getattr(scorer, "defense", None)
    if defense is not None:
        defense.reseed(seed)  # the same defense draws for every cell: reproducible scores
    voting = voting_module(scorer)
    if voting is not None:
        voting.take_votes()  # drop votes of earlier forwards (e.g. a cached attack's checks)
    pred, votes, draw_record = score_draws(
        scorer, x_adv, split, seed=seed, draws=effective_draws(scorer, draws)
    )
    undefended = None
    if undefended_model is not None:
        undefended = predict_images(
            undefended_model, x_adv, split, batch_size=batch_size, seed=seed
        )
    logger.info(
        "%s: robust accuracy %.4f (%s, %.1f s)",
        cell.cell_id,
        float((pred.predicted == pred.labels).mean()) if not pred.multi_label else float("nan"),
        "cached" if cached else "computed",
        seconds,
    )
    return CellRun(
        cell, attack, pred, norms, seconds, cached, votes, times, draw_record, undefended, earlier
    )


def cell_block(run: CellRun, clean: Predictions) -> dict[str, Any]:
    """The JSON block of one attack cell in the results file, with the per-image outcomes
    (image still classified correctly under the attack, :func:`correct_mask`)."""
    meta = run.attack.meta
    metrics = compute_adversarial_metrics(clean, run.pred)
    norms = {
        "linf_median": float(np.median(run.norms["linf"])),
        "linf_max": float(np.max(run.norms["linf"])),
        "l2_median": float(np.median(run.norms["l2"])),
        "l2_max": float(np.max(run.norms["l2"])),
    }
    return {
        "cell_id": run.cell.cell_id,
        "attack": run.cell.attack,
        "eps": run.cell.eps,
        "eps_label": eps_label(run.cell.eps) if run.attack.bounded else "unbounded",
        "norm": run.attack.norm,
        "bounded": run.attack.bounded,
        "knowledge": meta.knowledge,
        "reference": meta.reference,
        "config": run.attack.config(),
        "metrics": metrics,
        "outcomes": outcomes_block(correct_mask(run.pred)),
        "perturbation": norms,
        "timing": {
            "seconds": run.seconds,
            "cached": run.cached,
            **(run.passes.record() if run.passes is not None and not run.cached else {}),
            **(run.earlier.timing() if run.earlier is not None else {}),
        },
        **({"votes": run.votes} if run.votes is not None else {}),
        **({"draws": run.draws} if run.draws is not None else {}),
    }


def random_noise_predictions(
    model: ImageClassifier, split: ImageSplit, eps: float, *, seed: int, batch_size: int = 512
) -> Predictions:
    """Predictions under random corners of the L-inf eps-ball (x + eps * random signs)."""
    gen = torch.Generator().manual_seed(seed)
    x = split.images.float().div(255.0)
    signs = torch.randint(0, 2, x.shape, generator=gen).float().mul_(2).sub_(1)
    return predict_images(
        model, (x + eps * signs).clamp_(0, 1), split, batch_size=batch_size, seed=seed
    )
