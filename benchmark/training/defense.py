"""The training-time defense of a run: loaded, checked, seeded, and named in the model id."""

from __future__ import annotations

from typing import Any

from benchmark.datasets.base import DATASETS
from benchmark.defenses.base import Defense
from benchmark.defenses.conformance import validate_submission
from benchmark.defenses.submissions import Submission, load_submission
from benchmark.errors import ConfigError
from benchmark.results.naming import params_slug
from benchmark.training.config import TrainConfig


def defense_seed(seed: int) -> int:
    """Seed of a training defense's generator: derived from the run seed, so its stream is
    not the data order's."""
    return (seed * 1_000_003 + 17) % (2**31)


def defense_tag(defense: str, params: dict[str, Any]) -> str:
    """The model-id suffix of a robust model: ``pgd_at`` or ``pgd_at_steps=3``."""
    return f"{defense}_{params_slug(params)}" if params else defense


def load_training_defense(config: TrainConfig) -> tuple[Submission, Defense]:
    """The submission and built defense of ``config.defense`` (a training-kind defense that
    passes the conformance suite), checked against the dataset before any work.

    Raises:
        SubmissionError: the submission does not load or fails the conformance suite.
        ConfigError: it is not a training defense, or it is single-label and the task is not.
    """
    sub = load_submission(config.defense)  # type: ignore[arg-type]
    if sub.meta.kind != "training":
        raise ConfigError(
            f"defense '{sub.id}' is a {sub.meta.kind} defense, not a training one; evaluate "
            f"it with `bench evaluate --defense {sub.id}`"
        )
    validate_submission(sub, **config.defense_params)
    meta = DATASETS.get(config.dataset).meta
    defense = sub.build(seed=defense_seed(config.seed), **config.defense_params)
    if meta.multi_label and not getattr(defense, "multi_label_ok", False):
        raise ConfigError(
            f"defense '{sub.id}' is defined for single-label tasks and {config.dataset} is "
            "multi-label; use pgd_at or mpadvt"
        )
    return sub, defense
