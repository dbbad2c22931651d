"""Defenses: the ``DEFENSES`` registry."""

from benchmark.defenses.base import DEFENSE_KINDS, DEFENSES, DefenseMeta

__all__ = ["DEFENSES", "DEFENSE_KINDS", "DefenseMeta"]
