"""Attacks: the ``ATTACKS`` registry."""

from benchmark.attacks.base import ATTACKS, AttackMeta

__all__ = ["ATTACKS", "AttackMeta"]
