"""Attacks: the ``ATTACKS`` registry, torchattacks wrappers and our own attacks."""

from benchmark.attacks import gradient, torchattacks_attacks  # noqa: F401  (registers)
from benchmark.attacks.base import (
    ATTACKS,
    Attack,
    AttackError,
    AttackMeta,
    build_attack,
    check_adversarial,
    perturbation_norms,
)

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackError",
    "AttackMeta",
    "build_attack",
    "check_adversarial",
    "perturbation_norms",
]
