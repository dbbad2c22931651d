"""The results vocabulary every layer shares: threat models, eps / cell / defense labels, and
where a run's file lives.

This module is pure Python (no torch): the evaluation writes results with these names, and the
CLI, the reports and the leaderboard read them back with the same ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import Enum
from pathlib import Path
from typing import Any

from benchmark.errors import ResultsError


class ThreatModel(str, Enum):  # noqa: UP042 (StrEnum would change str(member))
    """What the attacker knows when an attack block was crafted.

    * ``white-box``: gradients of an undefended model;
    * ``oblivious``: crafted on the base model, blind to the defense;
    * ``adaptive``: crafted through the defended pipeline (EOT, BPDA);
    * ``transfer``: crafted on a surrogate model (valid against any pipeline);
    * ``black_box``: queries of the deployed defended pipeline (Square, SPSA, RayS).
    """

    WHITE_BOX = "white-box"
    OBLIVIOUS = "oblivious"
    ADAPTIVE = "adaptive"
    TRANSFER = "transfer"
    BLACK_BOX = "black_box"

    def __str__(self) -> str:
        return self.value

    @property
    def summary_groups(self) -> tuple[ThreatModel, ...]:
        """The threat models whose worst case an attack block of this kind counts toward:
        black-box blocks toward the adaptive one (they query the defended pipeline), transfer
        blocks toward both oblivious and adaptive (they do not depend on the defense)."""
        return _SUMMARY_GROUPS.get(self, (self,))

    @property
    def report_slot(self) -> ThreatModel:
        """The column a report shows a block in: oblivious (crafted without the defense:
        white-box on the bare model, oblivious, transfer) or adaptive (adaptive, black-box)."""
        if self in (ThreatModel.ADAPTIVE, ThreatModel.BLACK_BOX):
            return ThreatModel.ADAPTIVE
        return ThreatModel.OBLIVIOUS

    @property
    def on_defense(self) -> bool:
        """Whether examples of this kind are crafted on the defended pipeline (their cache
        identity then includes the defense)."""
        return self in (ThreatModel.ADAPTIVE, ThreatModel.BLACK_BOX)


_SUMMARY_GROUPS = {
    ThreatModel.BLACK_BOX: (ThreatModel.ADAPTIVE,),
    ThreatModel.TRANSFER: (ThreatModel.OBLIVIOUS, ThreatModel.ADAPTIVE),
}

#: The passes a defended evaluation may ask for (``--threat-model``).
DEFENDED_PASSES = (ThreatModel.OBLIVIOUS.value, ThreatModel.ADAPTIVE.value)
#: Threat models a defense may claim in its metadata.
CLAIMABLE_THREAT_MODELS = tuple(t.value for t in ThreatModel if t is not ThreatModel.WHITE_BOX)


def eps_label(eps: float) -> str:
    """Readable eps: ``8/255`` when eps is a multiple of 1/255 (or 0.5/255), else decimal."""
    scaled = eps * 255
    if abs(scaled - round(scaled * 2) / 2) < 1e-6:
        half = round(scaled * 2) / 2
        return f"{int(half)}/255" if half == int(half) else f"{half}/255"
    return f"{eps:g}"


def params_slug(params: dict[str, Any]) -> str:
    """``{"n": 100, "noise": "gaussian"}`` -> ``n=100,noise=gaussian`` (safe in a path)."""
    text = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    slug = re.sub(r"[^A-Za-z0-9_.=,\-]+", "-", text)
    if slug != text:  # characters were replaced: a short hash keeps distinct values apart
        slug += "," + hashlib.sha256(text.encode()).hexdigest()[:8]
    return slug


def _steps_name(attack: str, params: dict[str, Any]) -> str:
    """``pgd`` with ``{"steps": 20}`` -> ``pgd-20``."""
    return attack + (f"-{params['steps']}" if "steps" in params else "")


def cell_name(block: dict[str, Any]) -> str:
    """An attack block's name without its budget: ``pgd-20``, ``gap``; a transfer cell names
    the attack it crafts with (``transfer bim-100``), since cells that differ only in it would
    otherwise share a name."""
    params = block["config"]["params"]
    name = _steps_name(block["attack"], params)
    if block["attack"] == "transfer" and params.get("base_attack"):
        base = params.get("base_params") or {}
        if isinstance(base, str):
            try:
                base = json.loads(base)
            except json.JSONDecodeError:
                base = {}
        name += " " + _steps_name(params["base_attack"], base if isinstance(base, dict) else {})
    return name


def cell_label(block: dict[str, Any]) -> str:
    """Column heading for one attack block: ``pgd-20 8/255``, ``fgsm 0.01``, ``gap``,
    ``transfer bim-100 6/255`` (:func:`cell_name` and the budget)."""
    name = cell_name(block)
    return f"{name} {block['eps_label']}" if block["bounded"] else name


def defense_params_text(params: dict[str, Any] | None) -> str:
    """``{"n": 100, "a": 1}`` -> ``a=1, n=100`` (empty for no overrides)."""
    return ", ".join(f"{k}={v}" for k, v in sorted((params or {}).items()))


def defense_label(cfg: dict[str, Any]) -> str:
    """Row name of a run's config: ``none`` undefended, else the defense id and its overrides
    (and ``[BPDA]`` for a forced-BPDA adaptive run)."""
    if not cfg.get("defense"):
        return "none"
    extra = defense_params_text(cfg.get("defense_params"))
    bpda = " [BPDA]" if cfg.get("adaptive_gradient") == "bpda" else ""
    return f"{cfg['defense']}" + (f" ({extra})" if extra else "") + bpda


def run_suite(cfg: dict[str, Any]) -> str:
    """The suite part of a run's folder and id (see :func:`result_path`): the attack preset
    (``-bpda`` appended for a forced-BPDA adaptive pass), the corruption preset, or both."""
    suite = cfg.get("suite")
    if suite and cfg.get("adaptive_gradient") == "bpda":
        suite += "-bpda"
    names = [n for n in (suite, cfg.get("corruption_suite")) if n]
    return "+".join(names) or "clean"


_SAFE_PART = re.compile(r"^[A-Za-z0-9_.,=+\-]+$")

#: Folders beside the suites that hold files about runs, not results files: figure indexes
#: (``diagnostics``) and transfer matrices (``transfer``). No suite or model folder may take
#: these names, and results walkers skip them.
SIDE_FOLDERS = frozenset({"diagnostics", "transfer"})


def result_path(out_dir: Path, doc: dict[str, Any]) -> Path:
    """``<out>/<dataset>/<suite>/<model_id>[__<defense>[__<params>]]/<run_id>.json``.

    ``<params>`` are the defense's parameter overrides, e.g. ``denoiser=gaussian,n=100``.
    ``suite`` is the attack preset, the corruption preset, both joined by ``+``, or ``clean``.
    Every component must be a plain name: results files are untrusted input to
    ``bench leaderboard add``.
    """
    cfg = doc["config"]
    model_part = cfg["model_id"]
    if cfg.get("defense"):
        model_part += f"__{cfg['defense']}"
        if cfg.get("defense_params"):  # one folder per configuration of a defense
            model_part += "__" + params_slug(cfg["defense_params"])
    parts = [cfg["dataset"], run_suite(cfg), model_part, f"{doc['run_id']}.json"]
    for part in parts:
        if str(part) in SIDE_FOLDERS:
            raise ResultsError(f"results path component {part!r} is a reserved folder name")
        if not _SAFE_PART.match(str(part)) or str(part).startswith("."):
            raise ResultsError(
                f"results path component {str(part)[:80]!r} is not a plain name "
                "(letters, digits, _ . , = + -); the file is malformed"
            )
    return out_dir.joinpath(*parts)


__all__ = [
    "CLAIMABLE_THREAT_MODELS",
    "DEFENDED_PASSES",
    "SIDE_FOLDERS",
    "ThreatModel",
    "cell_label",
    "cell_name",
    "defense_label",
    "defense_params_text",
    "eps_label",
    "params_slug",
    "result_path",
    "run_suite",
]
