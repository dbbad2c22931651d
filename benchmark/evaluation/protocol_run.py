"""What a versioned protocol fixes in an evaluation, applied before any work: its attack
cells, its passes, EOT draws and scoring draws (``bench evaluate --protocol``), which
(pass, cell) pairs run against a given defense, and which track a defense belongs to.

The protocols themselves are data in :mod:`benchmark.results.protocols`; this module turns one
into evaluation options and refuses, one line each, the options it fixes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from benchmark.attacks.presets import AttackCell
from benchmark.defenses.base import VotingDefense
from benchmark.errors import ConfigError
from benchmark.results.naming import ThreatModel
from benchmark.results.protocols import (
    PGD10_SANITY,
    PROTOCOLS,
    SANITY_EPS,
    ProtocolAttack,
    track_protocol,
)


def protocol_cells(
    protocol_id: str,
    *,
    attacks: str | None,
    eps: Sequence[str],
    attack_params: Sequence[str],
    n_examples: int | None,
    split: str,
    sanity_attack: bool,
    subset_seed: int | None = None,
) -> tuple[str, list[AttackCell], bool]:
    """The suite name, attack cells and sanity flag of a protocol run; options that the
    protocol fixes are refused, one line each, rather than silently overridden."""
    protocol = PROTOCOLS.get(protocol_id)
    fixed = {
        "--attacks": attacks is not None,
        "--eps": bool(eps),
        "--attack-param": bool(attack_params),
        "--n-examples": n_examples is not None,
        "--subset-seed": subset_seed is not None,
        f"--split {split}": split != protocol.split,
        "--no-sanity-attack": sanity_attack != protocol.sanity_attack,
    }
    clashes = [name for name, given in fixed.items() if given]
    if clashes:
        raise ConfigError(
            f"--protocol {protocol.id} fixes the attacks, budgets and images: drop "
            f"{', '.join(clashes)} (or leave out --protocol for an exploratory run)"
        )
    cells = [AttackCell.make(a, e, **params) for a, e, params in protocol.cells()]
    return protocol.id, cells, protocol.sanity_attack


def sanity_attacks(protocol_id: str | None) -> tuple[ProtocolAttack, ...]:
    """The large-eps sanity attacks of a run: its protocol's (PGD-10 and APGD-CE-100 from
    version 2), or PGD-10 alone for a run without a protocol (a cheap screen; its failure
    says to check with a step-size-free attack)."""
    return (PGD10_SANITY,) if protocol_id is None else PROTOCOLS.get(protocol_id).sanity


def sanity_cells(protocol_id: str | None) -> list[AttackCell]:
    """The large-eps sanity cells (:func:`sanity_attacks` at 64/255)."""
    return [
        AttackCell.make(a.attack, SANITY_EPS, **a.param_dict) for a in sanity_attacks(protocol_id)
    ]


def protocol_defense_options(
    protocol_id: str,
    *,
    defense: str | None,
    threat_models: Sequence[str],
    eot_samples: int,
    draws: int,
) -> tuple[Sequence[str], int, int]:
    """The threat models, EOT draws and scoring draws of a protocol run: an adaptive-track
    protocol fixes them (and needs a defense); the deterministic track leaves the options as
    given. A value that contradicts the protocol is refused, not overridden."""
    protocol = PROTOCOLS.get(protocol_id)
    given = [t for item in threat_models for t in item.split(",") if t]
    if not protocol.adaptive:
        if defense is None:
            return threat_models, eot_samples, draws
        # A training-time defense is its robust model: the protocol attacks that model
        # white-box (the 'adaptive' pass), never the standard model's transferred examples.
        if given not in ([ThreatModel.OBLIVIOUS.value], [ThreatModel.ADAPTIVE.value]):
            raise ConfigError(
                f"--protocol {protocol.id} attacks a training-time defense's robust model "
                "white-box (--threat-model adaptive): drop --threat-model"
            )
        return [ThreatModel.ADAPTIVE.value], eot_samples, draws
    if defense is None:
        raise ConfigError(
            f"--protocol {protocol.id} evaluates a defense: pass --defense ID (an undefended "
            f"model runs {track_protocol(protocol, None).id})"
        )
    clashes = []
    if given not in ([ThreatModel.OBLIVIOUS.value], list(protocol.threat_models)):
        clashes.append("--threat-model")
    if eot_samples not in (20, protocol.eot_samples):
        clashes.append("--eot-samples")
    if draws not in (1, protocol.draws):
        clashes.append("--draws")
    if clashes:
        raise ConfigError(
            f"--protocol {protocol.id} fixes the threat models, EOT draws and scoring draws: "
            f"drop {', '.join(clashes)} (or leave out --protocol for an exploratory run)"
        )
    return list(protocol.threat_models), int(protocol.eot_samples or eot_samples), protocol.draws


def protocol_filter(
    protocol_id: str | None, defense: Any
) -> Callable[[str, AttackCell], bool] | None:
    """Which (pass, cell) pairs a run of ``protocol_id`` makes against ``defense`` (the built
    defense, None undefended): a protocol attack restricted to some passes or to some defenses
    (Square on the deployed pipeline of a randomized defense) runs only there. None without a
    protocol (every cell in every pass)."""
    if protocol_id is None:
        return None
    protocol = PROTOCOLS.get(protocol_id)
    randomized = bool(defense is not None and defense.meta.randomized)
    voting = isinstance(defense, VotingDefense)

    sanity = {c.cell_id for c in sanity_cells(protocol_id)}

    def keep(tm: str, cell: AttackCell) -> bool:
        if cell.cell_id in sanity:  # the sanity cells run in every pass
            return True
        rule = protocol.attack_rule(cell.attack)
        if rule is None:
            return True
        return rule.applies(randomized=randomized, voting=voting) and (
            not rule.passes or tm in rule.passes
        )

    return keep


def check_protocol_track(protocol_id: str | None, kind: str | None) -> None:
    """Refuse, before any work, a protocol run on the wrong track: the deterministic protocol
    evaluates undefended models and training-time defenses, the adaptive one the others.

    Raises:
        ConfigError: one line naming the protocol to use instead.
    """
    if protocol_id is None:
        return
    protocol = PROTOCOLS.get(protocol_id)
    adaptive_kind = kind is not None and kind != "training"
    if adaptive_kind and not protocol.adaptive:
        raise ConfigError(
            f"a {kind} defense is evaluated under the adaptive track: use --protocol "
            f"{track_protocol(protocol, kind).id}, not {protocol.id}"
        )
    if protocol.adaptive and not adaptive_kind:
        what = "an undefended model" if kind is None else "a training-time defense"
        raise ConfigError(
            f"{what} is evaluated under the deterministic track: use --protocol "
            f"{track_protocol(protocol, kind).id}, not {protocol.id}"
        )


__all__ = [
    "check_protocol_track",
    "protocol_cells",
    "protocol_defense_options",
    "protocol_filter",
    "sanity_attacks",
    "sanity_cells",
]
