"""Attacks: the ``ATTACKS`` registry, torchattacks wrappers and our own attacks."""

from benchmark.attacks import (  # noqa: F401  (importing a family registers its attacks)
    autoattack,
    first_order,
    gap,
    gradient,
    rays,
    reference_autoattack,
    reference_square,
    score_based,
    transfer,
    voting,
)
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
