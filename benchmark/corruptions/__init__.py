"""Corruptions: the ``CORRUPTIONS`` registry."""

from benchmark.corruptions.base import CORRUPTIONS, CorruptionMeta

__all__ = ["CORRUPTIONS", "CorruptionMeta"]
