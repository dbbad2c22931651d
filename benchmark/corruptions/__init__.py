"""Corruptions: perturbation sequences (kind "sequence") and severity corruptions.

The ``CORRUPTIONS`` registry holds both kinds: ``<type>_seq`` ids are the 14 Robust-Benchmark
sequence types (:mod:`.sequences`), the others are corruptions at severities 1-5
(:mod:`.severity`). ``CORRUPTION_PRESETS`` names the plans ``--corruptions`` accepts.
"""

from benchmark.corruptions import sequences, severity
from benchmark.corruptions.base import CORRUPTIONS, CorruptionMeta
from benchmark.corruptions.presets import CORRUPTION_PRESETS, CorruptionPlan, resolve_corruptions
from benchmark.corruptions.sequences import SEQUENCE_IDS, SequenceType
from benchmark.corruptions.severity import SeverityCorruption

__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_PRESETS",
    "SEQUENCE_IDS",
    "CorruptionMeta",
    "CorruptionPlan",
    "SequenceType",
    "SeverityCorruption",
    "resolve_corruptions",
    "sequences",
    "severity",
]
