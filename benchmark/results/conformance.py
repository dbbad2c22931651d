"""Conformance of a results document to a protocol: whether a run is one a board may rank.

:func:`protocol_problems` names everything that keeps a run from being a conformant run of its
protocol (:mod:`benchmark.results.protocols`): the protocol record, the whole split, every
protocol attack at every budget in every pass with its parameters, nothing beyond them but the
large-eps sanity cell (whose check must be recorded), and the track's own requirements (the
adaptive track's passes, EOT draws and worst-of-draws scoring; a training-time defense attacked
on its robust model only). Pure data, no torch, like the protocols.
"""

from __future__ import annotations

from typing import Any

from benchmark.results import corruption_protocols
from benchmark.results.corruption_protocols import (
    CORRUPTION_PROTOCOLS,
    CorruptionProtocol,
    configs_digest,
)
from benchmark.results.naming import eps_label
from benchmark.results.protocols import (
    PROTOCOLS,
    SANITY_EPS,
    Protocol,
    ProtocolAttack,
    autoattack_subattacks,
    sanity_label,
    superseded_by,
    track_protocol,
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
    defense = doc.get("defense") or {}
    if protocol.adaptive:
        problems += _adaptive_problems(doc, protocol)
        if problems:
            return problems
    blocks = doc.get("attacks") or []
    randomized = bool((defense.get("config") or {}).get("randomized"))
    voting = bool(defense.get("voting") or (doc.get("metrics") or {}).get("clean_votes"))
    for rule, eps, tm in _required_cells(protocol, randomized, voting):
        if not any(_block_matches(b, rule.attack, eps, rule.param_dict, tm) for b in blocks):
            where = f" ({tm} pass)" if tm else ""
            problems.append(
                f"missing {rule.attack} at {eps_label(eps)} with {rule.param_dict}{where}"
            )
    problems += _extra_and_sanity_problems(doc, protocol, randomized, voting)
    problems += _autoattack_problems(doc, protocol, randomized)
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


def current_protocol_problems(doc: dict[str, Any]) -> list[str]:
    """Why a results document is not a conformant run of the newest version of its protocol:
    its own protocol's problems, or, for a conformant run of a superseded version
    (:func:`~benchmark.results.protocols.superseded_by`), that version."""
    problems = protocol_problems(doc)
    if problems:
        return problems
    recorded = PROTOCOLS.get(doc["protocol"]["id"])
    newer = superseded_by(recorded)
    if newer is not None:
        return [f"a run of {recorded.id}, which the boards no longer rank (now {newer.id})"]
    return []


def corruption_protocol_problems(
    doc: dict[str, Any], protocol: CorruptionProtocol | None = None
) -> list[str]:
    """Why a results document is not a conformant run of the corruption ``protocol`` (the
    current one, :data:`~benchmark.results.corruption_protocols.CURRENT_CORRUPTION_PROTOCOL`,
    by default; empty: it is one, which a corruption board may rank).

    Checks the recorded id, version and sha256, the whole split, the seed of the corruption
    draws, every corruption at every severity with its per-image outcomes, and the sequences.
    """
    if protocol is None:
        protocol = corruption_protocols.CURRENT_CORRUPTION_PROTOCOL
    record = doc.get("corruption_protocol") or {}
    if not record:
        return [
            f"no corruption protocol: the run was not made with bench evaluate --corruptions "
            f"{protocol.id}"
        ]
    if record != protocol.record():
        if (record.get("id"), record.get("version")) == (protocol.id, protocol.version):
            return [
                f"recorded {protocol.id} {protocol.version} with sha256 "
                f"{str(record.get('sha256'))[:12]}, not the protocol's {protocol.sha256[:12]} "
                "(made by code that resolved the protocol differently)"
            ]
        known = record.get("id") in CORRUPTION_PROTOCOLS
        return [
            f"a run of {record.get('id')} {record.get('version')}"
            + ("" if known else " (not a registered corruption protocol)")
            + f", not {protocol.id} {protocol.version} (sha256 {protocol.sha256[:12]})"
        ]
    problems = []
    data = doc.get("data") or {}
    if data.get("split") != protocol.split or data.get("n") != data.get("n_split"):
        problems.append(
            f"images: {data.get('n')} of the {data.get('n_split')} {data.get('split')} images, "
            f"not the whole {protocol.split} split"
        )
    block = doc.get("corruptions") or {}
    if block.get("seed") != protocol.seed:
        problems.append(f"corruption draws seeded {block.get('seed')}, not {protocol.seed}")
    severity = block.get("severity") or {}
    ids = [row.get("id") for row in severity.get("corruptions") or []]
    if ids != list(protocol.corruptions) or severity.get("severities") != list(protocol.severities):
        problems.append(
            f"severity corruptions {ids} at {severity.get('severities')}, not the protocol's "
            f"{len(protocol.corruptions)} at {list(protocol.severities)}"
        )
    elif any(
        len(row.get("outcomes") or []) != len(protocol.severities)
        or len(row.get("images_sha256") or []) != len(protocol.severities)
        for row in severity["corruptions"]
    ):
        problems.append(
            "severity corruptions without per-image outcomes or image digests (a multi-label "
            "task, or a run made before schema 2.1)"
        )
    sequences = block.get("sequences") or {}
    types = sequences.get("types") or []
    seq_ids = [t.get("id") for t in types]
    if (
        seq_ids != [s for s in protocol.sequences for _ in protocol.sequence_severities]
        or sequences.get("n_frames") != protocol.n_frames
        or sequences.get("severities") != list(protocol.sequence_severities)
    ):
        problems.append(f"sequences {sorted(set(seq_ids))} are not the protocol's")
    elif any(not t.get("frames_sha256") for t in types):
        problems.append("sequences without frame digests (a run made before schema 2.1)")
    if not problems:
        configs = configs_digest(
            [(row.get("id"), row.get("config")) for row in severity["corruptions"]],
            [(t.get("id"), t.get("config")) for t in types[:: len(protocol.sequence_severities)]],
        )
        if configs != protocol.configs_sha256:
            problems.append(
                f"corruption implementations differ from the protocol's (configurations' "
                f"sha256 {configs[:12]}, not {protocol.configs_sha256[:12]})"
            )
    if (doc.get("defense") or {}).get("voting"):
        problems.append(
            "a voting defense: its abstentions are not scored on corrupted images, so its "
            "corruption figures are not the deployed pipeline's"
        )
    return problems


def ranked_run_problems(doc: dict[str, Any]) -> list[str]:
    """Why a results document is not a run a board may rank: the problems of every protocol it
    records against its current version (an L-inf protocol, the corruption protocol), or, when
    it records neither, that it is no L-inf protocol run. Empty: a conformant run of the
    current version of each protocol it records."""
    linf = bool(doc.get("protocol")) or not doc.get("corruption_protocol")
    problems = current_protocol_problems(doc) if linf else []
    if doc.get("corruption_protocol"):
        problems += corruption_protocol_problems(doc)
    return problems


def _required_cells(
    protocol: Protocol, randomized: bool, voting: bool
) -> list[tuple[ProtocolAttack, float, str]]:
    """Every (attack rule, budget, pass) a run of ``protocol`` must have, and the only ones it
    may have besides the sanity cell; the pass is "" for a run without defended passes."""
    return [
        (rule, eps, tm)
        for rule in protocol.attacks
        if rule.applies(randomized=randomized, voting=voting)
        for eps in protocol.budgets
        for tm in (rule.passes or protocol.threat_models or ("",))
    ]


def _is_sanity(
    block: dict[str, Any], protocol: Protocol, attack: ProtocolAttack | None = None
) -> bool:
    """Whether ``block`` is one of the protocol's large-eps sanity cells (``attack``, or any
    of its sanity attacks, at 64/255): the only blocks a protocol run may have beyond the
    protocol's attacks."""
    return any(
        _block_matches(block, a.attack, SANITY_EPS, a.param_dict)
        for a in ((attack,) if attack is not None else protocol.sanity)
    )


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
    allowed = _required_cells(protocol, randomized, voting)
    for b in blocks:
        if training and b.get("threat_model") in PASS_LABELS["oblivious"]:
            problems.append(
                f"extra pass: {b.get('cell_id')} ({b.get('threat_model')}) on a training-time "
                "defense, whose protocol attacks only its robust model"
            )
        elif not _is_sanity(b, protocol) and not any(
            _block_matches(b, rule.attack, eps, rule.param_dict, tm) for rule, eps, tm in allowed
        ):
            problems.append(
                f"extra attack: {b.get('cell_id')} ({b.get('threat_model') or 'white-box'}) "
                f"is not a cell of {protocol.id}; a conformant run has no others"
            )
    checks = {c.get("name"): c.get("status") for c in doc.get("sanity_checks") or []}
    if not protocol.sanity_attack:
        return problems
    ran_all = all(any(_is_sanity(b, protocol, a) for b in blocks) for a in protocol.sanity)
    if not ran_all or checks.get("large_eps_pgd") not in ("pass", "fail"):
        problems.append(
            f"the sanity attacks ({sanity_label(protocol.sanity)} at 64/255) did not all run or "
            "their check is not recorded"
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
        undefended = track_protocol(protocol, None).id
        return [f"{protocol.id} evaluates a defense: the run has none (use {undefended})"]
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


def _num_classes(doc: dict[str, Any]) -> int | None:
    """The run's class count, from its clean confusion matrix (None: not recorded)."""
    labels = (((doc.get("metrics") or {}).get("clean") or {}).get("confusion_matrix") or {}).get(
        "labels"
    )
    return len(labels) if labels else None


def _autoattack_problems(doc: dict[str, Any], protocol: Protocol, randomized: bool) -> list[str]:
    """Every ``autoattack_ref`` block must be the reference version the protocol fixes, as
    the run recorded it: the standard version (the ``rand`` version on the adaptive pass of a
    randomized defense), its sub-attacks for the run's class count
    (:func:`~benchmark.results.protocols.autoattack_subattacks`) and each at the protocol's
    iterations and queries. The protocol's parameters alone do not pin this: an APGD-CE-only
    or convergence-version block has the same ``steps`` and ``n_queries`` and would rank a
    weaker attack beside full AutoAttack runs."""
    k = _num_classes(doc)
    problems = []
    for b in doc.get("attacks") or []:
        if b.get("attack") != "autoattack_ref":
            continue
        adaptive_pass = b.get("threat_model") == "adaptive"
        version = "rand" if protocol.adaptive and randomized and adaptive_pass else "standard"
        config = b.get("config") or {}
        ran, ref = config.get("params") or {}, config.get("reference") or {}
        where = f"{b.get('cell_id')} ({b.get('threat_model') or 'white-box'})"
        if ran.get("version") != version:
            problems.append(f"{where}: AutoAttack version {ran.get('version')!r}, not {version!r}")
            continue
        if k is None:
            problems.append(f"{where}: the run records no class count to check its sub-attacks")
            continue
        want = autoattack_subattacks(version, k)
        if ref.get("attacks_to_run") != want:
            problems.append(
                f"{where}: sub-attacks {ref.get('attacks_to_run') or 'not recorded'}, not the "
                f"reference's {want} for {k} classes"
            )
            continue
        subs = ref.get("subattacks") or {}
        for name in want:  # each sub-attack's recorded budget: iterations, or Square's queries
            key, param = ("n_queries", "n_queries") if name == "square" else ("n_iter", "steps")
            got = (subs.get(name) or {}).get(key)
            if got is None:
                problems.append(f"{where}: {name}'s {key} is not recorded")
            elif got != ran.get(param):
                problems.append(
                    f"{where}: {name} ran {key}={got}, not the protocol's {ran.get(param)}"
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
    "PASS_LABELS",
    "corruption_protocol_problems",
    "current_protocol_problems",
    "protocol_problems",
    "ranked_run_problems",
]
