"""Versioned evaluation protocols: what fixes a ranked number.

A protocol names everything that affects a number on a ranked board: the images (the full
official test split, the same for every entry), the boards (norm and budgets), the attacks with
their budgets, and the track of defenses it applies to. Its id and version go into every
results file that runs it, with the sha256 of its resolved configuration, so a board can check
that all of its ranked rows ran the same protocol and label anything else exploratory.

The module is pure data (no torch): the evaluation writes the protocol block, and the
leaderboard, which must not load torch, checks it. ``docs/protocol.md`` is the prose version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ConfigError
from benchmark.registry import Registry
from benchmark.results.naming import eps_label

#: The protocol tracks: undefended models and training-time defenses (deterministic), and
#: randomized / preprocessing defenses (adaptive; its protocol comes with the adaptive track).
TRACKS = ("deterministic", "adaptive")
#: Convergence rule of every protocol: of the images still robust, a stronger APGD (twice the
#: iterations, more restarts) may break at most this many before the run is unreliable.
CONVERGENCE_MAX_CHANGED = 1
CONVERGENCE_RULE = f"at most {CONVERGENCE_MAX_CHANGED} image of those still robust may change"


@dataclass(frozen=True)
class ProtocolAttack:
    """One attack of a protocol, run at every budget of the protocol's boards.

    Attributes:
        attack: registered attack id.
        params: parameter values the run must use (the attack's published budget).
    """

    attack: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def param_dict(self) -> dict[str, Any]:
        """The parameters as a dict."""
        return dict(self.params)


@dataclass(frozen=True)
class ProtocolMeta:
    """What ``bench list protocols`` and ``bench info`` show of a protocol."""

    description: str
    version: str
    track: str
    reference: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Protocol:
    """A named, versioned evaluation protocol.

    Attributes:
        id: protocol id, e.g. ``mrb_linf_v1`` (the version's major number is part of it).
        version: full version; any change to what it resolves to bumps it.
        track: ``deterministic`` or ``adaptive`` (see :data:`TRACKS`).
        norm: threat norm of its boards.
        budgets: eps values, one board each, on the [0, 1] pixel scale.
        attacks: attacks run at every budget.
        split: the split scored; always the whole split (no subset).
        description: one line for ``bench list protocols``.
        reference: where its attacks and budgets come from.
        notes: what the protocol substitutes and why (e.g. for binary tasks).
        sanity_attack: whether the PGD-10 at 64/255 sanity attack runs too.
    """

    id: str
    version: str
    track: str
    norm: str
    budgets: tuple[float, ...]
    attacks: tuple[ProtocolAttack, ...]
    split: str = "test"
    description: str = ""
    reference: str = ""
    notes: str = ""
    sanity_attack: bool = True

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ConfigError(f"protocol track must be one of {', '.join(TRACKS)}")

    @property
    def meta(self) -> ProtocolMeta:
        """Its listing metadata."""
        return ProtocolMeta(self.description, self.version, self.track, self.reference, self.notes)

    def cells(self) -> list[tuple[str, float, dict[str, Any]]]:
        """``(attack, eps, params)`` of every attack cell the protocol runs."""
        return [(a.attack, eps, a.param_dict) for eps in self.budgets for a in self.attacks]

    def board_ids(self) -> list[str]:
        """Board ids of the protocol, as the site names them (``linf-8-255``)."""
        return [board_id(self.norm, eps) for eps in self.budgets]

    def resolved(self) -> dict[str, Any]:
        """The whole protocol as JSON data (what its sha256 covers)."""
        return {
            "id": self.id,
            "version": self.version,
            "track": self.track,
            "norm": self.norm,
            "budgets": [eps_label(e) for e in self.budgets],
            "split": self.split,
            "images": "all",
            "sanity_attack": self.sanity_attack,
            "attacks": [{"attack": a.attack, "params": a.param_dict} for a in self.attacks],
        }

    @property
    def sha256(self) -> str:
        """sha256 of :meth:`resolved` as canonical JSON."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """The ``protocol`` block of a results file that ran this protocol."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


def board_id(norm: str, eps: float) -> str:
    """``("linf", 8/255)`` -> ``linf-8-255``."""
    return f"{norm}-{eps_label(eps).replace('/', '-')}"


PROTOCOLS: Registry[Protocol] = Registry("protocol", meta_type=ProtocolMeta)


def _register(protocol: Protocol) -> Protocol:
    PROTOCOLS.register(protocol.id)(protocol)
    return protocol


MRB_LINF_V1 = _register(
    Protocol(
        id="mrb_linf_v1",
        version="1.0",
        track="deterministic",
        norm="linf",
        budgets=(2 / 255, 8 / 255),
        attacks=(ProtocolAttack("autoattack_ref", (("n_queries", 5000), ("steps", 100))),),
        description="L-inf 2/255 and 8/255 on the full test split: AutoAttack standard "
        "(reference implementation) at its published budget",
        reference="Croce & Hein 2020, Reliable evaluation of adversarial robustness with an "
        "ensemble of diverse parameter-free attacks, ICML, Sec. 4 (the standard version)",
        notes="AutoAttack standard (Croce & Hein 2020): APGD-CE and APGD-T with 100 iterations, "
        "FAB-T, Square with 5000 queries, each on the images still robust. For two classes the "
        "targeted and DLR attacks are undefined: APGD on the margin (CW) loss and untargeted "
        "FAB run instead; for three classes APGD-DLR and untargeted FAB. Undefended models and "
        "training-time defenses only; randomized and preprocessing defenses are exploratory "
        "until the adaptive track's protocol.",
    )
)


def protocol_problems(doc: dict[str, Any], protocol: Protocol | None = None) -> list[str]:
    """Why a results document is not a conformant run of ``protocol`` (the one it records,
    by default); empty when it is.

    Checks the recorded id, version and sha256, the full split, every protocol attack at every
    budget with the protocol's parameters, and the track of its defense.
    """
    record = doc.get("protocol") or {}
    if protocol is None:
        if not record:
            return ["no protocol: the run was not made with bench evaluate --protocol"]
        if record.get("id") not in PROTOCOLS:
            return [f"unknown protocol '{record.get('id')}'"]
        protocol = PROTOCOLS.get(record["id"])
    problems = []
    if record != protocol.record():
        problems.append(
            f"protocol recorded as {record or 'none'}, not {protocol.id} {protocol.version} "
            f"(sha256 {protocol.sha256[:12]})"
        )
    data = doc.get("data") or {}
    if data.get("split") != protocol.split or data.get("n") != data.get("n_split"):
        problems.append(
            f"images: {data.get('n')} of the {data.get('n_split')} {data.get('split')} images, "
            f"not the whole {protocol.split} split"
        )
    blocks = doc.get("attacks") or []
    for attack, eps, params in protocol.cells():
        if not any(_block_matches(b, attack, eps, params) for b in blocks):
            problems.append(f"missing {attack} at {eps_label(eps)} with {params}")
    defense = doc.get("defense") or {}
    if protocol.track == "deterministic" and defense and defense.get("kind") != "training":
        problems.append(
            f"a {defense.get('kind')} defense belongs to the adaptive track, not {protocol.id}"
        )
    return problems


def _block_matches(block: dict[str, Any], attack: str, eps: float, params: dict) -> bool:
    if block.get("attack") != attack or abs(float(block.get("eps", -1)) - eps) > 1e-9:
        return False
    ran = (block.get("config") or {}).get("params") or {}
    return all(ran.get(k) == v for k, v in params.items())


__all__ = [
    "CONVERGENCE_MAX_CHANGED",
    "CONVERGENCE_RULE",
    "MRB_LINF_V1",
    "PROTOCOLS",
    "TRACKS",
    "Protocol",
    "ProtocolAttack",
    "ProtocolMeta",
    "board_id",
    "protocol_problems",
]
