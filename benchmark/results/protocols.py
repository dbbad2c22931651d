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
#: randomized / preprocessing / wrapper defenses (adaptive: attacks on the whole pipeline).
TRACKS = ("deterministic", "adaptive")
#: When a protocol attack applies: to every entry, to randomized defenses only, or to voting
#: defenses only (an attack aimed at the vote and its abstention).
CONDITIONS = ("always", "randomized", "voting")
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
        passes: the threat-model passes it runs in (empty: every pass of the run), e.g.
            ``("adaptive",)`` for a black-box attack that must query the deployed pipeline.
        when: ``always``, or only for ``randomized`` or ``voting`` defenses
            (:data:`CONDITIONS`).
    """

    attack: str
    params: tuple[tuple[str, Any], ...] = ()
    passes: tuple[str, ...] = ()
    when: str = "always"

    def __post_init__(self) -> None:
        if self.when not in CONDITIONS:
            raise ConfigError(f"protocol attack condition must be one of {', '.join(CONDITIONS)}")

    def applies(self, *, randomized: bool, voting: bool) -> bool:
        """Whether the attack runs against a defense with these properties."""
        return (
            self.when == "always"
            or (self.when == "randomized" and randomized)
            or (self.when == "voting" and voting)
        )

    def resolved(self) -> dict[str, Any]:
        """Its JSON form (``passes`` and ``when`` only where they are not the defaults, so a
        protocol without them keeps its sha256)."""
        out: dict[str, Any] = {"attack": self.attack, "params": self.param_dict}
        if self.passes:
            out["passes"] = list(self.passes)
        if self.when != "always":
            out["when"] = self.when
        return out

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
        threat_models: the passes a run must make with its defense (adaptive track:
            oblivious and adaptive); empty for the deterministic track.
        eot_samples: EOT draws per forward pass of the adaptive attacks (adaptive track).
        draws: answers of a randomized defense per scored image (worst-of-draws scoring).
        sweep_factor: the convergence sweeps' last step, as a multiple of the protocol's APGD
            iterations and EOT draws (adaptive track; the deterministic track's stronger
            APGD is fixed in :mod:`benchmark.evaluation.convergence`).
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
    threat_models: tuple[str, ...] = ()
    eot_samples: int | None = None
    draws: int = 1
    sweep_factor: int = 2

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ConfigError(f"protocol track must be one of {', '.join(TRACKS)}")

    @property
    def adaptive(self) -> bool:
        """Whether this is an adaptive-track protocol (a defended pipeline is attacked)."""
        return self.track == "adaptive"

    @property
    def meta(self) -> ProtocolMeta:
        """Its listing metadata."""
        return ProtocolMeta(self.description, self.version, self.track, self.reference, self.notes)

    def cells(self) -> list[tuple[str, float, dict[str, Any]]]:
        """``(attack, eps, params)`` of every attack cell the protocol may run (a conditional
        attack runs only where it applies, see :meth:`ProtocolAttack.applies`)."""
        return [(a.attack, eps, a.param_dict) for eps in self.budgets for a in self.attacks]

    def attack_rule(self, attack: str) -> ProtocolAttack | None:
        """The protocol's entry for a registered attack id (None: not a protocol attack)."""
        return next((a for a in self.attacks if a.attack == attack), None)

    def board_ids(self) -> list[str]:
        """Board ids of the protocol, as the site names them (``linf-8-255``)."""
        return [board_id(self.norm, eps) for eps in self.budgets]

    def resolved(self) -> dict[str, Any]:
        """The whole protocol as JSON data (what its sha256 covers)."""
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "track": self.track,
            "norm": self.norm,
            "budgets": [eps_label(e) for e in self.budgets],
            "split": self.split,
            "images": "all",
            "sanity_attack": self.sanity_attack,
            "attacks": [a.resolved() for a in self.attacks],
        }
        if self.adaptive:  # the deterministic track's resolved form (and sha256) is unchanged
            out.update(
                threat_models=list(self.threat_models),
                eot_samples=self.eot_samples,
                draws=self.draws,
                sweep_factor=self.sweep_factor,
            )
        return out

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


MRB_LINF_ADAPTIVE_V1 = _register(
    Protocol(
        id="mrb_linf_adaptive_v1",
        version="1.0",
        track="adaptive",
        norm="linf",
        budgets=(2 / 255, 8 / 255),
        attacks=(
            ProtocolAttack("autoattack_ref", (("n_queries", 5000), ("steps", 100))),
            ProtocolAttack(
                "square_ref", (("n_queries", 5000),), passes=("adaptive",), when="randomized"
            ),
            ProtocolAttack("apgd_vote", (("steps", 100),), passes=("adaptive",), when="voting"),
        ),
        threat_models=("oblivious", "adaptive"),
        eot_samples=20,
        draws=5,
        sweep_factor=2,
        description="L-inf 2/255 and 8/255 on the full test split for preprocessing, wrapper "
        "and randomized defenses: AutoAttack on the whole defended pipeline (BPDA, EOT-20), "
        "Square-5000 on the deployed pipeline, worst of 5 draws, convergence sweeps",
        reference="Athalye et al. 2018 (BPDA, EOT), Croce & Hein 2020 (AutoAttack, rand "
        "version), Tramer et al. 2020 (adaptive attacks); docs/protocol.md",
        notes="Every attack runs twice: on the undefended model, its examples scored through "
        "the defense (oblivious), and on the whole defended pipeline (adaptive): exact "
        "gradients where the defense is differentiable, BPDA through its purify_approx or the "
        "identity where it is not, EOT over 20 draws per step of a randomized defense "
        "(AutoAttack's rand version: APGD-CE and APGD-DLR, APGD-margin for K = 2, 100 "
        "iterations); a deterministic pipeline gets the standard version (with Square-5000). "
        "A randomized defense also faces Square-5000 querying the deployed pipeline (one "
        "draw per query) and answers every scored image 5 times: an image counts only if all "
        "5 answers are right. A voting defense with abstention (MedRDF) also faces APGD on "
        "its smoothed vote aimed at the abstention threshold (apgd_vote, 100 iterations): an "
        "abstention is an error. The worst case per image is over every attack of both passes. "
        "Convergence: on the images still robust, APGD with twice the iterations and (for a "
        "randomized defense) twice the EOT draws may break at most one image.",
    )
)


def track_protocol(protocol: Protocol, defense_kind: str | None) -> Protocol:
    """The protocol that ranks an entry on ``protocol``'s boards: ``protocol`` itself for an
    undefended model or a training-time defense, else the adaptive-track protocol with the
    same norm and budgets (``protocol`` when none is registered)."""
    adaptive_kind = defense_kind is not None and defense_kind != "training"
    if adaptive_kind == protocol.adaptive:
        return protocol
    for pid in PROTOCOLS.list():
        other = PROTOCOLS.get(pid)
        if (other.adaptive, other.norm, other.budgets) == (
            adaptive_kind,
            protocol.norm,
            protocol.budgets,
        ):
            return other
    return protocol


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
    defense = doc.get("defense") or {}
    if protocol.adaptive:
        problems += _adaptive_problems(doc, protocol)
        if problems:
            return problems
    blocks = doc.get("attacks") or []
    randomized = bool((defense.get("config") or {}).get("randomized"))
    voting = bool(defense.get("voting") or (doc.get("metrics") or {}).get("clean_votes"))
    for rule in protocol.attacks:
        if not rule.applies(randomized=randomized, voting=voting):
            continue
        passes = rule.passes or protocol.threat_models or ("",)
        for eps in protocol.budgets:
            for tm in passes:
                if not any(
                    _block_matches(b, rule.attack, eps, rule.param_dict, tm) for b in blocks
                ):
                    where = f" ({tm} pass)" if tm else ""
                    problems.append(
                        f"missing {rule.attack} at {eps_label(eps)} with {rule.param_dict}{where}"
                    )
    problems += _extra_and_sanity_problems(doc, protocol, randomized, voting)
    if protocol.track == "deterministic" and defense:
        if defense.get("kind") != "training":
            problems.append(
                f"a {defense.get('kind')} defense belongs to the adaptive track, not {protocol.id}"
            )
        elif "adaptive" not in ((doc.get("config") or {}).get("threat_models") or []):
            problems.append(
                "the robust model was not attacked white-box (threat model adaptive): "
                "transferred examples of the standard model do not rank it"
            )
    return problems


SANITY_ATTACK = "pgd"
SANITY_EPS = 64 / 255
SANITY_PARAMS = {"steps": 10}
"""The large-eps sanity cell every protocol run adds to each pass (PGD-10 at 64/255): its
blocks are the only ones a protocol run may have beyond the protocol's attacks."""


def _is_sanity(block: dict[str, Any]) -> bool:
    return _block_matches(block, SANITY_ATTACK, SANITY_EPS, SANITY_PARAMS)


def _extra_and_sanity_problems(
    doc: dict[str, Any], protocol: Protocol, randomized: bool, voting: bool
) -> list[str]:
    """A conformant run has nothing beyond the protocol: every attack block is one of the
    protocol's cells in one of its passes, or the sanity cell (an extra attack would change
    the worst case the board ranks by); a training-time defense is attacked on its robust
    model only (no oblivious pass); and the sanity attack ran, with its check recorded."""
    problems = []
    blocks = doc.get("attacks") or []
    training = (doc.get("defense") or {}).get("kind") == "training"
    allowed = [
        (rule, eps, tm)
        for rule in protocol.attacks
        if rule.applies(randomized=randomized, voting=voting)
        for eps in protocol.budgets
        for tm in (rule.passes or protocol.threat_models or ("",))
    ]
    for b in blocks:
        if training and b.get("threat_model") in PASS_LABELS["oblivious"]:
            problems.append(
                f"extra pass: {b.get('cell_id')} ({b.get('threat_model')}) on a training-time "
                "defense, whose protocol attacks only its robust model"
            )
        elif not _is_sanity(b) and not any(
            _block_matches(b, rule.attack, eps, rule.param_dict, tm) for rule, eps, tm in allowed
        ):
            problems.append(
                f"extra attack: {b.get('cell_id')} ({b.get('threat_model') or 'white-box'}) "
                f"is not a cell of {protocol.id}; a conformant run has no others"
            )
    checks = {c.get("name"): c.get("status") for c in doc.get("sanity_checks") or []}
    if not any(_is_sanity(b) for b in blocks) or checks.get("large_eps_pgd") not in (
        "pass",
        "fail",
    ):
        problems.append(
            "the sanity attack (PGD-10 at 64/255) did not run or its check is not recorded"
        )
    return problems


#: The threat-model labels of the blocks each pass writes (an adaptive pass labels its query
#: attacks black_box; an oblivious pass its transfer attacks transfer).
PASS_LABELS = {"oblivious": ("oblivious", "transfer"), "adaptive": ("adaptive", "black_box")}


def _adaptive_problems(doc: dict[str, Any], protocol: Protocol) -> list[str]:
    """What an adaptive-track run must have besides its attack blocks: a preprocessing or
    wrapper defense, both passes, the EOT draws and the worst-of-draws scoring."""
    defense = doc.get("defense") or {}
    if not defense:
        return [f"{protocol.id} evaluates a defense: the run has none (use mrb_linf_v1)"]
    if defense.get("kind") == "training":
        return [f"a training-time defense belongs to the deterministic track, not {protocol.id}"]
    problems = []
    config = doc.get("config") or {}
    missing = [t for t in protocol.threat_models if t not in (config.get("threat_models") or [])]
    if missing:
        problems.append(f"threat models {', '.join(missing)} not evaluated")
    if (defense.get("config") or {}).get("randomized"):
        if int(defense.get("eot_samples") or 1) < int(protocol.eot_samples or 1):
            problems.append(
                f"EOT over {defense.get('eot_samples')} draws, not {protocol.eot_samples}"
            )
        if int(defense.get("draws") or 1) < protocol.draws:
            problems.append(
                f"scored with {defense.get('draws') or 1} draw(s) per image, not the worst of "
                f"{protocol.draws}"
            )
    return problems


def _block_matches(
    block: dict[str, Any], attack: str, eps: float, params: dict, tm: str = ""
) -> bool:
    if block.get("attack") != attack or abs(float(block.get("eps", -1)) - eps) > 1e-9:
        return False
    if tm and block.get("threat_model") not in PASS_LABELS.get(tm, (tm,)):
        return False
    ran = (block.get("config") or {}).get("params") or {}
    return all(ran.get(k) == v for k, v in params.items())


__all__ = [
    "CONDITIONS",
    "CONVERGENCE_MAX_CHANGED",
    "CONVERGENCE_RULE",
    "MRB_LINF_ADAPTIVE_V1",
    "MRB_LINF_V1",
    "PASS_LABELS",
    "PROTOCOLS",
    "SANITY_EPS",
    "TRACKS",
    "Protocol",
    "ProtocolAttack",
    "ProtocolMeta",
    "board_id",
    "protocol_problems",
    "track_protocol",
]
