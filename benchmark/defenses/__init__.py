"""Defenses: the plugin API (:class:`Defense`), the registry and submission loading."""

from benchmark.defenses.base import (
    DEFENSE_KINDS,
    DEFENSES,
    THREAT_MODELS,
    DefendedModel,
    Defense,
    DefenseMeta,
    SubmissionError,
    bpda,
)
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
    "DefendedModel",
    "Defense",
    "DefenseMeta",
    "Submission",
    "SubmissionError",
    "bpda",
    "list_submissions",
    "load_submission",
    "read_submission",
    "submissions_dir",
]
