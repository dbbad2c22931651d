"""Defenses: the plugin API (:class:`Defense`, :class:`VotingDefense`), the registry,
submission loading and the conformance suite every submission must pass."""

from benchmark.defenses.base import (
    DEFENSE_KINDS,
    DEFENSES,
    THREAT_MODELS,
    Defense,
    DefenseMeta,
    SubmissionError,
    VotingClassifier,
    VotingDefense,
)
from benchmark.defenses.conformance import CheckResult, validate_submission
from benchmark.defenses.pipeline import DefendedModel, bpda, restore_torch_threads
from benchmark.defenses.submissions import (
    Submission,
    list_submissions,
    load_submission,
    read_submission,
    submissions_dir,
)

__all__ = [
    "DEFENSES",
    "DEFENSE_KINDS",
    "THREAT_MODELS",
    "CheckResult",
    "DefendedModel",
    "Defense",
    "DefenseMeta",
    "Submission",
    "SubmissionError",
    "VotingClassifier",
    "VotingDefense",
    "bpda",
    "list_submissions",
    "load_submission",
    "read_submission",
    "restore_torch_threads",
    "submissions_dir",
    "validate_submission",
]
