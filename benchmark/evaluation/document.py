"""The results document of an evaluation: assembled in one place from the plan and the scores,
then written once, atomically, never over another run's file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import benchmark
from benchmark import paths
from benchmark.datasets.base import DATASETS
from benchmark.evaluation.adversarial import CellRun
from benchmark.evaluation.plan import EvaluationPlan
from benchmark.metrics.adversarial import (
    correct_mask,
    worst_case_accuracy,
    worst_case_balanced_accuracy,
)
from benchmark.metrics.base import Predictions
from benchmark.results.naming import ThreatModel, eps_label, result_path, run_suite
from benchmark.results.outcomes import indices_block, labels_block
from benchmark.results.protocols import PROTOCOLS
from benchmark.results.provenance import environment, package_versions, utc_now
from benchmark.results.schema import SCHEMA_VERSION, write_result

#: The card fields of the evaluated model a results file repeats.
_CARD_FIELDS = ("epochs", "best_epoch", "recipe", "created_at", "training_time_hours", "defense")


@dataclass
class ThreatModelScores:
    """The attack runs one threat model's summary counts (its worst case and sanity checks).

    Attributes:
        runs: the cell runs, sanity cells excluded.
        summaries: each run's summary for the sanity checks.
        large_correct: per image, correct under every large-eps sanity attack so far (None
            when none ran).
    """

    runs: list[CellRun] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    large_correct: np.ndarray | None = None

    def add_large(self, correct: np.ndarray) -> None:
        """Count a sanity attack's per-image outcomes into the worst case over them."""
        correct = np.asarray(correct, dtype=bool)
        self.large_correct = correct if self.large_correct is None else self.large_correct & correct

    @property
    def large(self) -> float | None:
        """Accuracy at 64/255, per image the worst case over the sanity attacks (None: none
        ran)."""
        return None if self.large_correct is None else float(self.large_correct.mean())


@dataclass
class AttackScores:
    """What the attack passes gave.

    Attributes:
        blocks: one results block per pass, in run order.
        by_threat_model: the summary groups, in the order they were first used.
    """

    blocks: list[dict[str, Any]] = field(default_factory=list)
    by_threat_model: dict[str, ThreatModelScores] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        """The threat model the worst case and the sanity checks are reported for: adaptive
        when it ran, else the first one."""
        if ThreatModel.ADAPTIVE.value in self.by_threat_model:
            return ThreatModel.ADAPTIVE.value
        return next(iter(self.by_threat_model), ThreatModel.WHITE_BOX.value)

    @property
    def primary_scores(self) -> ThreatModelScores:
        """The primary threat model's runs (empty without attacks)."""
        return self.by_threat_model.get(self.primary, ThreatModelScores())

    @property
    def every_run(self) -> list[CellRun]:
        """Every pass's runs, each once (a cell can sit in two summary groups): what the
        worst case over all threat models (``any``), and a protocol's, is taken over."""
        return list({id(r): r for s in self.by_threat_model.values() for r in s.runs}.values())


@dataclass
class Scores:
    """Everything an evaluation measured, ready to be written.

    Attributes:
        clean: clean predictions of the scorer.
        metrics: the ``metrics`` block (clean, clean votes, undefended clean).
        attacks: the attack passes' results.
        noise: accuracy under uniform random noise, by eps.
        sanity: the sanity checks.
        defense: the ``defense`` block (None undefended).
        corruptions: the ``corruptions`` block (None without corruptions).
        seconds: wall time of the scoring.
        convergence: the ``convergence`` block of a protocol run (None otherwise; see
            :mod:`benchmark.evaluation.convergence`).
    """

    clean: Predictions
    metrics: dict[str, Any]
    attacks: AttackScores
    noise: dict[float, float]
    sanity: list[dict[str, Any]]
    defense: dict[str, Any] | None
    corruptions: dict[str, Any] | None
    seconds: float
    convergence: dict[str, Any] | None = None


def budget_members(runs: list[CellRun], norm: str, eps: float) -> list[CellRun]:
    """The bounded runs a budget's worst case counts: every attack of ``norm`` at ``eps`` or
    below (an example inside a smaller ball is inside the larger one too)."""
    return [
        r for r in runs if r.attack.bounded and r.attack.norm == norm and r.cell.eps <= eps + 1e-12
    ]


def still_robust(clean: Predictions, runs: list[CellRun], norm: str, eps: float) -> np.ndarray:
    """Per image, whether it counts as robust in the worst case at budget (norm, eps):
    correct clean and under every run of :func:`budget_members`."""
    robust = correct_mask(clean)
    for r in budget_members(runs, norm, eps):
        robust = robust & correct_mask(r.pred)
    return robust


def worst_cases(clean: Predictions, runs: list[CellRun]) -> list[dict[str, Any]]:
    """Per budget (norm, eps): accuracy on images robust to every attack of that norm at
    that eps or below (an example inside a smaller ball is inside the larger one too).

    :meth:`benchmark.results.view.RunView.worst_case_outcomes` recomputes the per-image worst
    case from the stored outcomes with the same rule."""
    bounded = [r for r in runs if r.attack.bounded]
    out = []
    for norm, eps in sorted({(r.attack.norm, r.cell.eps) for r in bounded}):
        members = budget_members(bounded, norm, eps)
        preds = [m.pred for m in members]
        out.append(
            {
                "norm": norm,
                "eps": eps,
                "eps_label": eps_label(eps),
                "attacks": [m.cell.cell_id for m in members],
                "robust_accuracy": worst_case_accuracy(clean, preds),
                "robust_balanced_accuracy": worst_case_balanced_accuracy(clean, preds),
            }
        )
    return out


def data_block(plan: EvaluationPlan) -> dict[str, Any]:
    """The ``data`` block: the split, its file and license, the subset scored, and the identity
    and labels of every image scored (``indices``, ``labels``: the outcomes' order)."""
    config, full, indices = plan.config, plan.full, plan.indices
    data = {
        "dataset": config.dataset,
        "split": config.split,
        "n": len(plan.split),
        "n_split": len(full),
        "sha256": full.sha256,
        "source": Path(full.source_path).name,
        "license": DATASETS.get(config.dataset).meta.license,
        "indices": indices_block(indices.tolist(), len(full)),
        "labels": labels_block(plan.split.labels.numpy()),
    }
    if len(indices) < len(full):
        data["subset"] = {
            "n_examples": len(indices),
            "seed": config.images_seed,
            "indices": indices.tolist(),
        }
    return data


def model_block(plan: EvaluationPlan) -> dict[str, Any]:
    """The ``model`` block: the deployed model's id, checkpoint and training card."""
    card = plan.deployed.card
    return {
        "model_id": card["model_id"],
        "arch": plan.config.arch,
        "checkpoint_sha256": card["checkpoint"]["sha256"],
        "card": {k: card[k] for k in _CARD_FIELDS},
    }


def build_document(
    plan: EvaluationPlan, scores: Scores, *, git: Any, cache_hits: int, cache_misses: int
) -> dict[str, Any]:
    """The results document of an evaluation (its schema: :mod:`benchmark.results.schema`).

    Args:
        plan: what was evaluated.
        scores: what it measured.
        git: the checked-out commit (:func:`benchmark.results.provenance.git_commit`).
        cache_hits: cache hits of the run.
        cache_misses: cache misses of the run.

    Returns:
        The document, ready to write.
    """
    config = plan.config
    created = utc_now()
    submission_id = plan.submission.id if plan.submission is not None else None
    resolved = config.record(defense_id=submission_id, model_id=plan.model_id, device=plan.device)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "benchmark_version": benchmark.__version__,
        "created_at": created,
        "run_id": f"{run_suite(resolved)}_{created.replace(':', '').replace('-', '').lower()}",
        "git": git,
        "config": resolved,
        "seed": config.seed,
        "environment": environment(plan.device),
        "versions": package_versions(),
        "data": data_block(plan),
        "model": model_block(plan),
        "metrics": scores.metrics,
        "timing": {
            "seconds": scores.seconds,
            "cache_hits": cache_hits,
            "cache_misses": cache_misses,
        },
    }
    if plan.has_attacks:
        doc.update(_attack_sections(scores, defended=scores.defense is not None))
    if scores.defense is not None:
        doc["defense"] = scores.defense
    if plan.deployed is not plan.entry:  # a robust model: the base one crafted oblivious attacks
        doc["base_model"] = {"model_id": plan.model_id, "checkpoint_sha256": plan.model_sha}
    if scores.corruptions is not None:
        doc["corruptions"] = scores.corruptions
    if config.protocol is not None:  # id, version and the sha256 of what it resolves to
        doc["protocol"] = PROTOCOLS.get(config.protocol).record()
    if config.corruption_protocol is not None:
        doc["corruption_protocol"] = config.corruption_protocol.record()
    if scores.convergence is not None:
        doc["convergence"] = scores.convergence
    return doc


def _attack_sections(scores: Scores, *, defended: bool) -> dict[str, Any]:
    """The attack blocks, worst cases, random noise, sanity checks and flags."""
    attacks, clean = scores.attacks, scores.clean
    out: dict[str, Any] = {
        "attacks": attacks.blocks,
        "worst_case": worst_cases(clean, attacks.primary_scores.runs),
        "random_noise": [
            {"eps": e, "eps_label": eps_label(e), "accuracy": a} for e, a in scores.noise.items()
        ],
        "sanity_checks": scores.sanity,
        "flags": sorted({c["flag"] for c in scores.sanity if c["flag"]}),
    }
    if defended:
        groups = attacks.by_threat_model
        out["worst_case_threat_model"] = attacks.primary
        out["worst_case_by_threat_model"] = {
            tm: worst_cases(clean, s.runs) for tm, s in groups.items()
        }
        if len(groups) > 1:  # the best known attack per image, whatever its threat model
            out["worst_case_by_threat_model"]["any"] = worst_cases(clean, attacks.every_run)
    return out


def write_document(doc: dict[str, Any], out_dir: str | Path | None) -> Path:
    """Write ``doc`` atomically under the results folder (``--out``/``$BENCH_RESULTS_DIR``)
    at :func:`~benchmark.results.naming.result_path`; two runs in the same second keep both
    files, never overwriting. Returns the path written."""
    out = paths.results_dir(out_dir)
    target = result_path(out, doc)
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{doc['run_id']}-{n}.json")
    write_result(doc, target)
    return target


__all__ = [
    "AttackScores",
    "Scores",
    "ThreatModelScores",
    "budget_members",
    "build_document",
    "data_block",
    "model_block",
    "still_robust",
    "worst_cases",
    "write_document",
]
