"""Deprecated location of the defense conformance suite: use
:mod:`benchmark.defenses.conformance` (it belongs to the plugin API). This re-export keeps
old imports working for now."""

from benchmark.defenses.conformance import SHAPES, CheckResult, validate_submission

__all__ = ["SHAPES", "CheckResult", "validate_submission"]
