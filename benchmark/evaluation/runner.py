"""The evaluation runner: score a zoo model (behind a defense if asked) clean, under attack and
under corruptions, and write one versioned results file.

A run is a set of cells (one per attack configuration) on one dataset split and one zoo
model, optionally behind a defense submission and then once per threat model. Everything is
loaded, validated and built first (:mod:`benchmark.evaluation.plan`: a bad parameter costs
nothing); each pass's adversarial examples are cached on disk (so a rerun after an
interruption, or a defense evaluated against the same oblivious attack, does no attack work),
corrupted images and their predictions are cached the same way
(:mod:`benchmark.evaluation.corruption`), and the result file is assembled
(:mod:`benchmark.evaluation.document`) and written once, atomically, at the end.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import paths
from benchmark.datasets.base import to_float
from benchmark.defenses.sandbox import SandboxLimits
from benchmark.device import seed_everything
from benchmark.errors import ConfigError
from benchmark.evaluation.adversarial import cell_block, random_noise_predictions, run_cell
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.config import EvaluationConfig
from benchmark.evaluation.corruption import CorruptionRunner
from benchmark.evaluation.defended import defense_block, inference_cost
from benchmark.evaluation.document import (
    AttackScores,
    Scores,
    ThreatModelScores,
    build_document,
    write_document,
)
from benchmark.evaluation.draws import effective_draws
from benchmark.evaluation.estimate import log_run_estimate
from benchmark.evaluation.memory import plan_batch_size
from benchmark.evaluation.passes import scorer_key
from benchmark.evaluation.plan import (
    EvaluationPlan,
    build_plan,
    load_reference,
    select_subset,
)
from benchmark.evaluation.plan_convergence import plan_convergence
from benchmark.evaluation.protocol_run import sanity_attacks
from benchmark.evaluation.sanity import oblivious_vs_adaptive, run_checks
from benchmark.metrics.adversarial import correct_mask
from benchmark.metrics.balanced import balanced_accuracy, stratified_bootstrap_balanced
from benchmark.metrics.base import Predictions, scalar, wilson_interval
from benchmark.metrics.classification import compute_clean_metrics
from benchmark.models.inference import predict
from benchmark.models.zoo import ModelZoo
from benchmark.results.naming import ThreatModel, result_path
from benchmark.results.outcomes import outcomes_block
from benchmark.results.protocols import sanity_label
from benchmark.results.provenance import git_commit
from benchmark.training import TrainConfig

logger = logging.getLogger(__name__)


def evaluate(
    config: EvaluationConfig,
    *,
    data_dir: str | Path | None = None,
    zoo: ModelZoo | None = None,
    out_dir: str | Path | None = None,
    download: bool = False,
    train_if_missing: bool = False,
    train_config: TrainConfig | None = None,
    cache: AdversarialCache | None = None,
    progress: bool | None = None,
    executor: Any = None,
    isolation: str | None = None,
    sandbox_limits: SandboxLimits | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a zoo model (behind ``config.defense`` if set) clean, under
    ``config.attacks`` and under ``config.corruptions``; write its results file.

    Args:
        config: what to evaluate.
        data_dir: data root (``--data-dir``/``$BENCH_DATA_DIR``).
        zoo: model zoo (default: ``ModelZoo()``).
        out_dir: results folder (``--out``/``$BENCH_RESULTS_DIR``, default ``./results``).
        download: let MedMNIST download a missing file.
        train_if_missing: train the model with ``train_config`` if the zoo lacks it.
        train_config: recipe used when training is needed (default:
            :meth:`EvaluationConfig.train_config`, the MedMNIST recipe); its dataset,
            architecture, image size and seed are those of ``config``.
        cache: adversarial-example cache (default: the per-user cache).
        progress: show progress bars (default: only on a terminal).
        executor: where attack passes are crafted (None: here, one after the other; a
            :class:`~benchmark.evaluation.executors.RayExecutor` fans them out to a Ray
            cluster first, and this process then finds them in the shared cache).
        isolation: where the defense's code runs (``sandbox``, ``builtin``, ``none``; see
            :mod:`benchmark.defenses.isolation`); recorded, it changes no number.
        sandbox_limits: the sandbox's resource limits.

    Returns:
        The result document and the path it was written to.
    """
    git = git_commit()  # the code that runs is the code checked out now
    zoo = zoo or ModelZoo()
    cache = cache or AdversarialCache()
    if executor is not None and not cache.enabled:
        raise ConfigError("an executor hands attack work over through the cache: enable it")
    plan = build_plan(
        config,
        data_dir=data_dir,
        zoo=zoo,
        cache=cache,
        download=download,
        train_if_missing=train_if_missing,
        train_config=train_config,
        progress=progress,
        isolation=isolation,
        sandbox_limits=sandbox_limits,
    )
    try:
        return _run(plan, zoo, cache, data_dir, executor, progress, out_dir, git)
    finally:
        plan.close()


def _run(
    plan: EvaluationPlan,
    zoo: ModelZoo,
    cache: AdversarialCache,
    data_dir: Any,
    executor: Any,
    progress: bool | None,
    out_dir: Any,
    git: Any,
) -> tuple[dict[str, Any], Path]:
    """:func:`evaluate` once its plan is built."""
    plan = plan_batch_size(plan, cache)
    log_run_estimate(plan, cache)  # a run with attacks says how long they will take, first
    reference = load_reference(plan, zoo)
    if executor is not None and plan.passes:  # crafts every pass elsewhere, into the cache
        executor.craft(
            plan.config.portable(plan.device),
            len(plan.passes),
            data_dir=paths.data_dir(data_dir),
            zoo=zoo,
            cache=cache,
        )
    seed_everything(plan.config.seed)
    start = time.perf_counter()
    clean, metrics = _score_clean(plan)
    attacks = _attack_passes(plan, clean, cache, progress)
    noise = _random_noise(plan, attacks)
    sanity = _sanity_checks(plan, attacks, noise)
    # A protocol run's convergence evidence, on the images its worst case over every pass
    # leaves robust (the figure a board ranks); it does not change the worst case.
    convergence = plan_convergence(plan, clean, attacks.every_run, cache)
    defense = _defense_section(plan, attacks)
    corruptions = _corruptions(plan, clean, reference, cache, progress)
    scores = Scores(
        clean=clean,
        metrics=metrics,
        attacks=attacks,
        noise=noise,
        sanity=sanity,
        defense=defense,
        corruptions=corruptions,
        seconds=time.perf_counter() - start,
        convergence=convergence,
    )
    doc = build_document(plan, scores, git=git, cache_hits=cache.hits, cache_misses=cache.misses)
    path = write_document(doc, out_dir)
    logger.info("wrote %s", path)
    return doc, path


def _score_clean(plan: EvaluationPlan) -> tuple[Predictions, dict[str, Any]]:
    """Clean predictions of the scorer and the ``metrics`` block's clean entries (with a
    defense, the undefended model's too)."""
    config, split = plan.config, plan.split
    clean, clean_votes, draws = plan.score(to_float(split.images))
    metrics: dict[str, Any] = {"clean": _clean_block(clean)}
    if draws is not None:
        metrics["clean"]["draws"] = draws
    if clean_votes is not None:
        metrics["clean_votes"] = clean_votes
    if plan.defense is not None:
        base = predict(plan.model, split, batch_size=config.batch_size, seed=config.seed)
        metrics["undefended_clean"] = _clean_block(base)
    return clean, metrics


def _clean_block(pred: Predictions) -> dict[str, Any]:
    """Every clean metric and the per-image outcomes they are computed from."""
    return {**compute_clean_metrics(pred), "outcomes": outcomes_block(correct_mask(pred))}


def _attack_passes(
    plan: EvaluationPlan, clean: Predictions, cache: AdversarialCache, progress: bool | None
) -> AttackScores:
    """Run every attack pass (crafted, or found in the cache) and score it."""
    config = plan.config
    defended = plan.defense is not None
    scores = AttackScores()
    for p in plan.passes:
        tm = p.threat_model
        # Query attacks on the defended pipeline (black_box) are summarised with the adaptive
        # pass (the white-box vs black-box check), transfer cells with the oblivious pass and,
        # since they are valid attacks on the deployed pipeline too, with the adaptive one.
        groups = [
            scores.by_threat_model.setdefault(g.value, ThreatModelScores())
            for g in tm.summary_groups
            if g is tm or g.value in config.pass_threat_models
        ]
        run = run_cell(
            **plan.cell_arguments(p),
            cache=cache,
            progress=progress,
            score_model=plan.scorer,
            draws=config.draws,
            # Examples crafted on the base model (oblivious, transfer) are scored by it too:
            # the undefended robust accuracy beside the defended one, from the same examples.
            undefended_model=plan.model if defended and not tm.on_defense else None,
        )
        block = cell_block(run, clean)
        if defended:
            block["threat_model"] = tm.value
        if run.undefended is not None:
            block["undefended"] = undefended_block(run.undefended, config.seed)
        acc = block["metrics"]["robust_accuracy"]["value"]
        for group in groups:
            if p.sanity:
                group.add_large(correct_mask(run.pred))
                block["sanity_only"] = True
            else:
                group.runs.append(run)
                group.summaries.append({**run.summary(), "accuracy": acc, "threat_model": tm.value})
        scores.blocks.append(block)
    return scores


def undefended_block(pred: Predictions, seed: int) -> dict[str, Any]:
    """An oblivious attack block's ``undefended`` sub-block: the base model's robust accuracy
    on the block's examples (Wilson interval), its balanced accuracy (stratified bootstrap
    interval; single-label tasks only) and the per-image outcomes both are computed from."""
    correct = correct_mask(pred)
    n, k = len(correct), int(correct.sum())
    block: dict[str, Any] = {
        "robust_accuracy": scalar(k / max(n, 1), n, wilson_interval(k, n), "wilson"),
        "outcomes": outcomes_block(correct),
    }
    if not pred.multi_label:
        labels = pred.labels.astype(np.int64)
        block["robust_balanced_accuracy"] = scalar(
            balanced_accuracy(correct, labels),
            n,
            stratified_bootstrap_balanced(correct, labels, seed=seed),
            "bootstrap",
        )
    return block


def _random_noise(plan: EvaluationPlan, attacks: AttackScores) -> dict[float, float]:
    """Accuracy under random corners of the L-inf ball at every eps of the primary threat
    model's bounded L-inf attacks (the noise-vs-attack sanity check)."""
    config = plan.config
    runs = attacks.primary_scores.runs
    noise = {}
    for eps in sorted({r.cell.eps for r in runs if r.attack.norm == "linf" and r.attack.bounded}):
        if plan.defense is not None:
            plan.defense.reseed(config.seed)
        pred = random_noise_predictions(
            plan.scorer, plan.split, eps, seed=config.seed, batch_size=config.batch_size
        )
        noise[eps] = float(correct_mask(pred).mean())
    return noise


def _sanity_checks(
    plan: EvaluationPlan, attacks: AttackScores, noise: dict[float, float]
) -> list[dict[str, Any]]:
    """The sanity checks of the primary threat model (and, with a defense, oblivious vs
    adaptive); none for a clean evaluation."""
    if not plan.has_attacks:
        return []
    primary = attacks.primary_scores
    defended = plan.defense is not None
    sanity = run_checks(
        primary.summaries,
        noise,
        primary.large,
        len(plan.split),
        defended=defended,
        large_eps_attack=sanity_label(sanity_attacks(plan.config.protocol)),
    )
    if defended:
        groups = attacks.by_threat_model
        empty = ThreatModelScores()
        sanity.append(
            oblivious_vs_adaptive(
                groups.get(ThreatModel.OBLIVIOUS.value, empty).summaries,
                groups.get(ThreatModel.ADAPTIVE.value, empty).summaries,
                training=plan.training_defense,
            )
        )
    return sanity


def _defense_section(plan: EvaluationPlan, attacks: AttackScores) -> dict[str, Any] | None:
    """The ``defense`` block: the submission, its configuration and its inference cost."""
    if plan.defense is None or plan.defended is None:
        return None
    config = plan.config
    block = defense_block(
        plan.submission,
        plan.defense,
        config.threat_models,
        config.eot_samples,
        config.bpda_always,
    )
    block["draws"] = effective_draws(plan.scorer, config.draws)
    block["cost"] = inference_cost(
        plan.model, plan.defended, plan.split, config.batch_size, config.seed
    )
    block["sanity_checks_threat_model"] = attacks.primary
    if plan.isolation is not None:
        block["isolation"] = plan.isolation
    return block


def _corruptions(
    plan: EvaluationPlan,
    clean: Predictions,
    reference: Any,
    cache: AdversarialCache,
    progress: bool | None,
) -> dict[str, Any] | None:
    """The ``corruptions`` block: corrupted images through the deployed pipeline."""
    config = plan.config
    if config.corruptions is None:
        return None
    if plan.defense is not None:
        plan.defense.reseed(config.seed)
    return CorruptionRunner(
        plan.scorer,
        plan.split,
        plan.indices,
        model_sha256=scorer_key(plan.model_sha, plan.robust_sha, plan.defense),
        reference=reference,
        seed=config.corruption_seed,
        batch_size=config.batch_size,
        cache=AdversarialCache(cache.root / "corruptions", enabled=cache.enabled),
        progress=progress,
    ).run(config.corruptions, clean)


__all__ = ["EvaluationConfig", "evaluate", "result_path", "select_subset"]
