"""Attacks: the ``ATTACKS`` registry, torchattacks wrappers and our own attacks."""

from benchmark.attacks import gap, gradient, rays, torchattacks_attacks, transfer  # noqa: F401
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
