"""Attack passes: which model each attack cell sees under each threat model, and the cache
identity of what it crafts.

An undefended run has one white-box pass over its cells; a defended run has one pass per
threat model (oblivious, adaptive). Within a pass a cell's label can differ from the pass:
a transfer attack is labelled ``transfer``, a query attack on the adaptive pass ``black_box``
(:func:`pass_target`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from benchmark.attacks.base import ATTACKS, Attack, AttackContext
from benchmark.attacks.presets import AttackCell
from benchmark.evaluation.adversarial import build_cells
from benchmark.results.naming import ThreatModel

#: Attack knowledge that queries the attacked model instead of differentiating it.
QUERY_KNOWLEDGE = ("score-based", "decision-based")


@dataclass(frozen=True)
class AttackPass:
    """One attack cell under one threat model, built and ready to craft.

    Attributes:
        threat_model: what the attacker knows (the label of the cell's results block).
        cell: the attack configuration.
        attack: the attack, built on :attr:`target`.
        target: the module the attack differentiates or queries.
        key_extra: what besides the attack determines the examples (the defense, EOT draws,
            a robust model's checkpoint) when they are crafted on the defended pipeline; None
            when they are crafted on the base model and shared with the undefended run.
        context: the attack context of this pass (its model identity includes ``key_extra``).
        sanity: whether the cell is the large-eps sanity attack (not part of the results).
    """

    threat_model: ThreatModel
    cell: AttackCell
    attack: Attack
    target: torch.nn.Module
    key_extra: dict[str, Any] | None
    context: AttackContext
    sanity: bool = False


def pass_target(
    tm: ThreatModel | str,
    cell: AttackCell,
    model: torch.nn.Module,
    defended: torch.nn.Module | None,
    adaptive_model: torch.nn.Module | None,
    oblivious_pass: bool = True,
) -> tuple[ThreatModel | None, torch.nn.Module]:
    """The threat-model label of ``cell`` in pass ``tm`` and the model its attack sees.

    Oblivious pass: every attack is crafted on the base model (a transfer attack on its
    surrogate, labelled ``transfer``). Adaptive pass: gradient attacks see the EOT/BPDA
    pipeline; query attacks (Square, SPSA, RayS) query the deployed defended pipeline itself
    and are labelled ``black_box``; transfer attacks do not depend on the defense, so they run
    here only when there is no oblivious pass (``label None``: skip the cell).
    """
    tm = ThreatModel(tm)
    knowledge = ATTACKS.get(cell.attack).meta.knowledge
    if tm is not ThreatModel.ADAPTIVE:
        transfer = knowledge == "transfer" and tm is not ThreatModel.WHITE_BOX
        return (ThreatModel.TRANSFER if transfer else tm), model
    if knowledge == "transfer":
        return (None if oblivious_pass else ThreatModel.TRANSFER), model
    if knowledge in QUERY_KNOWLEDGE:
        assert defended is not None
        return ThreatModel.BLACK_BOX, defended
    assert adaptive_model is not None
    return ThreatModel.ADAPTIVE, adaptive_model


def adaptive_overrides(
    label: ThreatModel | str | None, cell: AttackCell, defense: Any, adaptive_model: Any
) -> dict[str, Any]:
    """Attack parameters that change on the adaptive pass: AutoAttack's ``rand`` version
    (APGD-CE/DLR with EOT, Croce & Hein 2020 Sec. 5) against a randomized defense. APGD
    draws once per step when the attacked model already averages draws (``--eot-samples`` >
    1, or a voting defense's smoothed classifier), else the paper's 20 times. Both AutoAttacks
    (``autoattack``, ``autoattack_ref``) take the same two parameters."""
    autoattack = cell.attack in ("autoattack", "autoattack_ref")
    if label == ThreatModel.ADAPTIVE and autoattack and defense.meta.randomized:
        return {"version": "rand", "eot_iter": 1 if adaptive_model.averages else 20}
    return {}


def key_extra(
    tm: ThreatModel | str,
    defense: Any,
    adaptive_model: Any,
    robust_sha: str | None = None,
    bpda_always: bool = False,
    submission_sha: str | None = None,
) -> dict[str, Any] | None:
    """What besides the attack determines examples crafted on the defended pipeline (the
    submission's folder sha256, which covers every file of it, not only the class's; for a
    training-time defense: its robust model's checkpoint; for a forced-BPDA adaptive pass,
    that gradient). None for a pass crafted on the base model."""
    tm = ThreatModel(tm)
    if not tm.on_defense:
        return None
    extra: dict[str, Any] = {"defense": defense.config()}
    if submission_sha is not None:
        extra["submission"] = submission_sha
    if defense.meta.randomized:
        # Each batch draws the defense's randomness from its own crafting seed (craft_seed),
        # never a scoring draw's; examples crafted before that rule shared draw 0's noise.
        extra["defense_draws"] = "craft_seed per batch"
    if tm is ThreatModel.ADAPTIVE:
        extra["eot"] = getattr(adaptive_model, "samples", 1)
        if extra["eot"] > 1:  # batched draws are other draws than one-by-one ones
            extra["eot_layout"] = getattr(adaptive_model, "layout", "sequential")
        if bpda_always:
            extra["gradient"] = "bpda"
    if robust_sha is not None:
        extra["robust_model"] = robust_sha
    return extra


def combined_sha(model_sha: str, extra: dict[str, Any]) -> str:
    """A stable identity for the base checkpoint combined with what else defines a model."""
    blob = json.dumps({"model": model_sha, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def scorer_key(model_sha: str, robust_sha: str | None, defense: Any) -> str:
    """Cache identity of what scores images: the model's checkpoint, a robust model's, or the
    base checkpoint combined with the defense's configuration."""
    if robust_sha is not None:
        return robust_sha
    if defense is None:
        return model_sha
    return combined_sha(model_sha, {"defense": defense.config()})


def build_passes(
    threat_models: list[str],
    cells: list[AttackCell],
    *,
    seed: int,
    context: AttackContext,
    model: torch.nn.Module,
    defended: torch.nn.Module | None = None,
    adaptive_model: torch.nn.Module | None = None,
    defense: Any = None,
    robust_sha: str | None = None,
    bpda_always: bool = False,
    submission_sha: str | None = None,
    sanity_cells: list[AttackCell] | None = None,
    keep: Callable[[str, AttackCell], bool] | None = None,
) -> list[AttackPass]:
    """Every attack pass of a run, built (a bad parameter fails here, before any work) and
    validated against ``context`` (e.g. a missing transfer surrogate).

    Args:
        threat_models: the passes: ``["white-box"]`` undefended, else the defended ones.
        cells: the cells every pass runs, the sanity cells included.
        seed: the attacks' seed.
        context: the run's attack context (base model identity).
        model: the base model.
        defended: the deployed defended pipeline (query attacks of the adaptive pass).
        adaptive_model: the EOT/BPDA pipeline the adaptive pass differentiates.
        defense: the built defense (None undefended).
        robust_sha: checkpoint sha256 of a training-time defense's robust model.
        submission_sha: the defense submission's sha256 (part of defended passes' keys).
        bpda_always: the adaptive pass uses BPDA through a differentiable purifier too.
        sanity_cells: the large-eps sanity cells (the very objects in ``cells``), if any.
        keep: which (pass, cell) pairs run (a protocol's pass and defense conditions; None:
            every cell in every pass).

    Returns:
        The passes, threat model by threat model, cell by cell.
    """
    passes: list[AttackPass] = []
    oblivious = ThreatModel.OBLIVIOUS.value in threat_models
    for tm in threat_models:
        for cell in cells:
            if keep is not None and not keep(tm, cell):
                continue
            label, target = pass_target(tm, cell, model, defended, adaptive_model, oblivious)
            if label is None:
                continue
            overrides = adaptive_overrides(label, cell, defense, adaptive_model)
            (attack,) = build_cells(target, [cell], seed, **overrides)
            extra = key_extra(
                label, defense, adaptive_model, robust_sha, bpda_always, submission_sha
            )
            # What an attack trains or caches in prepare() (GAP's generator) belongs to the
            # model it attacks: the defended pipeline gets its own identity, not the base
            # model's.
            own = context
            if extra:
                own = replace(context, model_sha256=combined_sha(context.model_sha256, extra))
            passes.append(
                AttackPass(
                    threat_model=label,
                    cell=cell,
                    attack=attack,
                    target=target,
                    key_extra=extra,
                    context=own,
                    sanity=any(cell is s for s in sanity_cells or ()),
                )
            )
    for p in passes:
        p.attack.validate(context)
    return passes


__all__ = [
    "QUERY_KNOWLEDGE",
    "AttackPass",
    "adaptive_overrides",
    "build_passes",
    "combined_sha",
    "key_extra",
    "pass_target",
    "scorer_key",
]
