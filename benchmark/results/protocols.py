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
import re
from dataclasses import dataclass, replace
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
#: Budget of the large-eps sanity attack (Carlini et al. 2019, Sec. 5: an attack at a budget that
#: can erase the image must drive accuracy near zero).
SANITY_EPS = 64 / 255
#: The most accuracy the sanity attacks may leave at :data:`SANITY_EPS`.
LARGE_EPS_MAX_ACCURACY = 0.05


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


#: The large-eps sanity attack of runs without a protocol and of the version-1 protocols: PGD-10.
PGD10_SANITY = ProtocolAttack("pgd", (("steps", 10),))
#: Added to the sanity attacks from version 2 on: APGD-CE with AutoAttack's 100 iterations (Croce
#: & Hein 2020, Sec. 3). PGD-10's fixed step size stalls on a flat loss: on the BreastMNIST
#: PGD-AT model it kept 26.3 % at 64/255, and APGD-CE-100 broke 39 of those 42 images
#: (``benchmarks/records/large_eps/``), so v1 flagged an attack too weak as gradient masking.
APGD100_SANITY = ProtocolAttack("apgd_ce", (("steps", 100),))
#: Version 2's sanity attacks, scored per image as the worst case over both: APGD hands back the
#: clean image wherever it did not flip the model it attacked, which on a randomized or voting
#: pipeline (scored over other draws) can leave an image that PGD-10's perturbed one breaks.
V2_SANITY = (PGD10_SANITY, APGD100_SANITY)


def sanity_label(attacks: tuple[ProtocolAttack, ...]) -> str:
    """``PGD-10`` / ``PGD-10 and APGD-CE-100``: the sanity attacks as prose names them."""
    names = []
    for attack in attacks:
        steps = attack.param_dict.get("steps")
        name = attack.attack.upper().replace("_", "-")
        names.append(f"{name}-{steps}" if steps is not None else name)
    return " and ".join(names)


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
        sanity_attack: whether the large-eps sanity attacks (``sanity`` at 64/255) run too.
        sanity: the attacks of the large-eps sanity check, scored per image as the worst case
            over them (PGD-10 in version 1, :data:`V2_SANITY` from version 2).
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
    sanity: tuple[ProtocolAttack, ...] = (PGD10_SANITY,)
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
        if self.sanity != (PGD10_SANITY,):  # version 1's resolved form (and sha256) is unchanged
            out["sanity"] = [{**a.resolved(), "eps": eps_label(SANITY_EPS)} for a in self.sanity]
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
        "FAB run instead; for three classes APGD-DLR and FAB-T (two targets). Undefended "
        "models and training-time defenses only; preprocessing, wrapper and randomized "
        "defenses run the adaptive track's protocol, mrb_linf_adaptive_v1.",
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


def _version_2(v1: Protocol, partner: tuple[str, str]) -> Protocol:
    """Version 2 of a version-1 protocol: the same boards, images, attacks and budgets, with
    APGD-CE-100 beside PGD-10 as the large-eps sanity attacks (:data:`V2_SANITY`)."""
    old, new = partner
    return replace(
        v1,
        id=v1.id.replace("_v1", "_v2"),
        version="2.0",
        sanity=V2_SANITY,
        description=v1.description + "; large-eps sanity check with PGD-10 and APGD-CE-100",
        notes=v1.notes.replace(old, new)
        + " Sanity: PGD-10 and APGD-CE with 100 iterations at 64/255, worst case per image, "
        "must leave at most 5 % (version 1 used PGD-10 alone, which stalls on a flat loss and "
        "flagged such models as masking).",
    )


MRB_LINF_V2 = _register(_version_2(MRB_LINF_V1, ("mrb_linf_adaptive_v1", "mrb_linf_adaptive_v2")))
MRB_LINF_ADAPTIVE_V2 = _register(_version_2(MRB_LINF_ADAPTIVE_V1, ("mrb_linf_v1", "mrb_linf_v2")))
#: The protocols the boards rank by now; version 1 stays registered so that its runs can be
#: read, checked and reproduced, and its boards' rows are shown as exploratory.
CURRENT_PROTOCOL = MRB_LINF_V2


def autoattack_subattacks(version: str, num_classes: int) -> list[str]:
    """The reference AutoAttack's sub-attacks, in order, that ``autoattack_ref`` runs for a
    version and class count (the reference's names; 'apgd-dlr' is APGD-margin for K = 2).

    The standard version (Croce & Hein 2020, Sec. 4) for K >= 4; for K = 3 targeted DLR is
    undefined, so APGD-DLR and FAB-T; for K = 2 APGD-margin and untargeted FAB. ``rand``:
    APGD-CE and APGD-DLR with EOT (Sec. 5). ``convergence``: the standard run's white-box
    APGD sub-attacks only (docs/protocol.md). Pure data: the attack builds from it and
    :mod:`benchmark.results.conformance` checks a run's record against it.
    """
    if version == "rand":
        return ["apgd-ce", "apgd-dlr"]
    if version == "convergence":
        return ["apgd-ce", "apgd-t" if num_classes >= 4 else "apgd-dlr"]
    if num_classes >= 4:
        return ["apgd-ce", "apgd-t", "fab-t", "square"]
    if num_classes == 3:
        return ["apgd-ce", "apgd-dlr", "fab-t", "square"]
    return ["apgd-ce", "apgd-dlr", "fab", "square"]


def superseded_by(protocol: Protocol) -> Protocol | None:
    """The newest registered version of ``protocol``'s family (``mrb_linf_v1`` ->
    ``mrb_linf_v2``: the same id up to ``_v<major>``), when it is newer; None when
    ``protocol`` is the newest (or its id names no version)."""
    match = re.fullmatch(r"(.+)_v(\d+)", protocol.id)
    if match is None:
        return None
    family, major = match.group(1), int(match.group(2))
    newer = []
    for pid in PROTOCOLS.list():
        other = re.fullmatch(rf"{re.escape(family)}_v(\d+)", pid)
        if other is not None and int(other.group(1)) > major:
            newer.append((int(other.group(1)), PROTOCOLS.get(pid)))
    return max(newer, key=lambda pair: pair[0])[1] if newer else None


def track_protocol(protocol: Protocol, defense_kind: str | None) -> Protocol:
    """The protocol that ranks an entry on ``protocol``'s boards: ``protocol`` itself for an
    undefended model or a training-time defense, else the adaptive-track protocol with the
    same norm, budgets and version (``protocol`` when none is registered)."""
    adaptive_kind = defense_kind is not None and defense_kind != "training"
    if adaptive_kind == protocol.adaptive:
        return protocol
    for pid in PROTOCOLS.list():
        other = PROTOCOLS.get(pid)
        if (other.adaptive, other.norm, other.budgets, other.version) == (
            adaptive_kind,
            protocol.norm,
            protocol.budgets,
            protocol.version,
        ):
            return other
    return protocol


__all__ = [
    "APGD100_SANITY",
    "CONDITIONS",
    "CONVERGENCE_MAX_CHANGED",
    "CONVERGENCE_RULE",
    "CURRENT_PROTOCOL",
    "LARGE_EPS_MAX_ACCURACY",
    "MRB_LINF_ADAPTIVE_V1",
    "MRB_LINF_ADAPTIVE_V2",
    "MRB_LINF_V1",
    "MRB_LINF_V2",
    "PGD10_SANITY",
    "PROTOCOLS",
    "SANITY_EPS",
    "TRACKS",
    "V2_SANITY",
    "Protocol",
    "ProtocolAttack",
    "ProtocolMeta",
    "autoattack_subattacks",
    "board_id",
    "sanity_label",
    "superseded_by",
    "track_protocol",
]
