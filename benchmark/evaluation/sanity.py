"""Automatic sanity checks of an attack evaluation (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", Sec. 5 checklist).

Each check returns ``{"name", "status": pass|fail|not_applicable, "description", "details",
"flag"}``; a failed check sets a flag such as "possible gradient masking" that the leaderboard
shows. Comparisons allow a tolerance of one sample (1/n) for attack randomness.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from benchmark.results.protocols import LARGE_EPS_MAX_ACCURACY, SANITY_EPS

ITERATIVE = {
    "bim",
    "pgd",
    "mifgsm",
    "difgsm",
    "apgd_ce",
    "apgd_dlr",
    "apgd_vote",
    "autoattack",
    "autoattack_ref",
    "binm",
    "pgdnm",
}
SINGLE_STEP = {"fgsm", "fgnm"}
LARGE_EPS = SANITY_EPS


def _check(name: str, description: str, status: str, details: Any, flag: str = "") -> dict:
    return {
        "name": name,
        "description": description,
        "status": status,
        "details": details,
        "flag": flag if status == "fail" else "",
    }


def eps_monotonicity(cells: list[dict], tol: float) -> dict:
    """Accuracy must not rise with eps for the same attack and parameters."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cells:
        if c["bounded"]:
            key = (
                c["attack"],
                c["steps"],
                tuple(sorted((k, v) for k, v in c["params"].items() if k != "alpha")),
            )
            groups[key].append(c)
    details, violations = [], 0
    for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if len({m["eps"] for m in members}) < 2:
            continue
        members = sorted(members, key=lambda m: m["eps"])
        accs = [m["accuracy"] for m in members]
        bad = [i for i in range(1, len(accs)) if accs[i] > accs[i - 1] + tol]
        violations += len(bad)
        details.append(
            {
                "attack": key[0],
                "steps": key[1],
                "eps": [m["eps"] for m in members],
                "accuracy": accs,
                "violations": len(bad),
            }
        )
    if not details:
        return _check(
            "eps_monotonicity",
            "accuracy does not rise with eps",
            "not_applicable",
            "no attack was run at two or more eps values",
        )
    return _check(
        "eps_monotonicity",
        "accuracy does not rise with eps",
        "fail" if violations else "pass",
        details,
        "accuracy rises with eps",
    )


def iterative_vs_single_step(cells: list[dict], tol: float) -> dict:
    """An iterative attack is at least as strong as one step at the same eps."""
    by_eps: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if c["bounded"] and c["norm"] == "linf":
            # Only gradient attacks: a black-box or transfer attack (Square, RayS, GAP) has no
            # steps parameter and would count as one step (a black-box attack beating the
            # white-box ones is whitebox_vs_blackbox's signal, not this one's).
            kind = (
                "single"
                if c["attack"] in SINGLE_STEP or (c["attack"] in ITERATIVE and c["steps"] == 1)
                else "iterative"
                if c["attack"] in ITERATIVE
                else ""
            )
            if kind:
                by_eps[c["eps"]][kind].append(c["accuracy"])
    details, failed = [], False
    for eps, kinds in sorted(by_eps.items()):
        if kinds["single"] and kinds["iterative"]:
            best_iter, best_single = min(kinds["iterative"]), min(kinds["single"])
            ok = best_iter <= best_single + tol
            failed |= not ok
            details.append(
                {
                    "eps": eps,
                    "best_iterative_accuracy": best_iter,
                    "best_single_step_accuracy": best_single,
                    "ok": ok,
                }
            )
    if not details:
        return _check(
            "iterative_vs_single_step",
            "iterative attacks beat one step",
            "not_applicable",
            "no eps with both a single-step and an iterative attack",
        )
    return _check(
        "iterative_vs_single_step",
        "iterative attacks beat one step",
        "fail" if failed else "pass",
        details,
        "possible gradient masking",
    )


def large_eps(accuracy: float | None, defended: bool, attack: str = "PGD-10") -> dict:
    """The sanity attacks at eps 64/255 (``attack`` names them: PGD-10 without a protocol and
    in the version-1 protocols, PGD-10 and APGD-CE-100 from version 2; per image the worst
    case over them) drive accuracy near zero."""
    desc = (
        f"{attack} at eps 64/255 (per image, the worst case) leaves accuracy <= "
        f"{LARGE_EPS_MAX_ACCURACY:.0%}"
    )
    if accuracy is None:
        return _check("large_eps_pgd", desc, "not_applicable", "not run")
    ok = accuracy <= LARGE_EPS_MAX_ACCURACY
    status = "pass" if ok else "fail"
    flag = (
        "attack too weak or gradient masking"
        if not defended
        else ("robustness at 64/255: possible gradient masking")
    )
    details = {"eps": LARGE_EPS, "accuracy": accuracy, "attack": attack}
    return _check("large_eps_pgd", desc, status, details, flag)


def whitebox_vs_blackbox(cells: list[dict], tol: float, defended: bool = False) -> dict:
    """White-box attacks are at least as strong as black-box and transfer attacks; on a
    defense, a failure is flagged "gradient masking suspected" (the issue's wording)."""
    by_eps: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if c["bounded"]:
            side = "white" if c["knowledge"] == "white-box" else "black"
            by_eps[(c["norm"], c["eps"])][side].append(c["accuracy"])
    details, failed = [], False
    for (norm, eps), sides in sorted(by_eps.items()):
        if sides["white"] and sides["black"]:
            ok = min(sides["white"]) <= min(sides["black"]) + tol
            failed |= not ok
            details.append(
                {
                    "norm": norm,
                    "eps": eps,
                    "best_white_box": min(sides["white"]),
                    "best_black_box": min(sides["black"]),
                    "ok": ok,
                }
            )
    if not details:
        return _check(
            "whitebox_vs_blackbox",
            "white-box at least as strong as black-box",
            "not_applicable",
            "no eps with both white-box and black-box attacks",
        )
    return _check(
        "whitebox_vs_blackbox",
        "white-box at least as strong as black-box",
        "fail" if failed else "pass",
        details,
        "gradient masking suspected" if defended else "possible gradient masking",
    )


def noise_vs_attack(cells: list[dict], noise: dict[float, float], tol: float) -> dict:
    """Random noise of the same L-inf norm is weaker than the attacks."""
    details, failed = [], False
    for eps, noise_acc in sorted(noise.items()):
        accs = [
            c["accuracy"]
            for c in cells
            if c["bounded"] and c["norm"] == "linf" and abs(c["eps"] - eps) < 1e-12
        ]
        if accs:
            ok = min(accs) <= noise_acc + tol
            failed |= not ok
            details.append(
                {
                    "eps": eps,
                    "noise_accuracy": noise_acc,
                    "best_attack_accuracy": min(accs),
                    "ok": ok,
                }
            )
    if not details:
        return _check(
            "noise_vs_attack",
            "attacks beat random noise of the same norm",
            "not_applicable",
            "no L-inf attack",
        )
    return _check(
        "noise_vs_attack",
        "attacks beat random noise of the same norm",
        "fail" if failed else "pass",
        details,
        "attack weaker than random noise",
    )


OBFUSCATION_GAP = 0.10
"""Oblivious minus adaptive robust accuracy above which a defense is flagged."""


def oblivious_vs_adaptive(
    oblivious: list[dict], adaptive: list[dict], *, training: bool = False
) -> dict:
    """A defense whose adaptive accuracy is far below its oblivious accuracy (any cell, by more
    than :data:`OBFUSCATION_GAP`) owes its robustness to the attacker not seeing it.

    Not applicable to a training-time defense (``training``): there the oblivious cells are
    the undefended model's examples transferred to another network, which a white-box attack
    on that network beats by construction; the gaps are still reported."""
    desc = f"adaptive robust accuracy within {OBFUSCATION_GAP:.0%} of oblivious robust accuracy"
    obl = {c["cell_id"]: c["accuracy"] for c in oblivious}
    # White-box adaptive cells only: a black-box cell is another attack, not the same one
    # made aware of the defense.
    ada = {
        c["cell_id"]: c["accuracy"]
        for c in adaptive
        if c.get("threat_model", "adaptive") == "adaptive"
    }
    gaps = {cid: obl[cid] - ada[cid] for cid in obl if cid in ada}
    if not gaps:
        return _check("oblivious_vs_adaptive", desc, "not_applicable", "needs both threat models")
    worst = max(gaps, key=lambda k: gaps[k])
    details = {"largest_gap": gaps[worst], "cell": worst, "gaps": gaps}
    if training:
        details["why"] = "training-time defense: oblivious cells are transfer attacks"
        return _check("oblivious_vs_adaptive", desc, "not_applicable", details)
    status = "fail" if gaps[worst] > OBFUSCATION_GAP else "pass"
    return _check("oblivious_vs_adaptive", desc, status, details, "robustness from obfuscation")


def run_checks(
    cells: list[dict],
    noise: dict[float, float],
    large_eps_accuracy: float | None,
    n: int,
    *,
    defended: bool = False,
    large_eps_attack: str = "PGD-10",
) -> list[dict]:
    """All checks for cells summarised as dicts with ``attack, eps, norm, bounded, knowledge,
    steps, params, accuracy``; ``large_eps_attack`` names the sanity attack that gave
    ``large_eps_accuracy`` (per image, the worst case over them)."""
    tol = 1.0 / max(n, 1)
    return [
        eps_monotonicity(cells, tol),
        iterative_vs_single_step(cells, tol),
        large_eps(large_eps_accuracy, defended, large_eps_attack),
        whitebox_vs_blackbox(cells, tol, defended),
        noise_vs_attack(cells, noise, tol),
    ]
