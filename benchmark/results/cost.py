"""What earlier protocol runs cost, read from their results files: a calibration for the
estimate a new run logs before its attack work (:mod:`benchmark.evaluation.estimate`), whose
bounds from measured passes are far apart because AutoAttack's cost depends on how many images
stay robust. ``benchmarks/protocol_cost.py`` gives the full figure (per cell, model share).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.results.conformance import protocol_problems
from benchmark.results.diagnostics import results_files

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastRun:
    """One finished protocol run: the seconds of its attack work (every cell computed, none
    from the cache), the device it ran on in words, whether it evaluated a defense, and the
    architecture of its model."""

    seconds: float
    device: str
    defended: bool
    arch: str = "?"


def attack_seconds(doc: dict[str, Any]) -> float | None:
    """The wall seconds of a results document's attack cells and convergence passes; None
    where a cell came from the cache or records no time (the run's cost is then unknown)."""
    total = 0.0
    for block in doc.get("attacks") or []:
        timing = block.get("timing") if isinstance(block, dict) else None
        if not isinstance(timing, dict) or timing.get("cached"):
            return None
        if timing.get("resumed_batches_without_cost"):  # resumed batches of unknown cost
            return None
        seconds = timing.get("seconds")
        if not isinstance(seconds, (int, float)):
            return None
        total += float(seconds)
    for budget in (doc.get("convergence") or {}).get("budgets") or []:
        seconds = budget.get("seconds") if isinstance(budget, dict) else None
        if isinstance(seconds, (int, float)):
            total += float(seconds)
    return total if total > 0 else None


def device_text(env: dict[str, Any], *, kernels: bool = False) -> str:
    """``cpu (1 thread)`` or the GPU's name, from a results document's or a model card's
    ``environment``; ``kernels``: with the CPU kernels' instruction set where recorded
    (``cpu (1 thread, AVX512)``, as the zoo page shows a training run; ``AVX2 pinned`` where
    the run pinned them with ``bench train --cpu-isa``, which any CPU with them reproduces)."""
    if env.get("device") == "cpu":
        n = env.get("num_threads", "?")
        pinned = " pinned" if (env.get("cpu_isa_env") or {}).get("ATEN_CPU_CAPABILITY") else ""
        isa = f", {env['cpu_capability']}{pinned}" if kernels and env.get("cpu_capability") else ""
        return f"cpu ({n} thread{'' if n == 1 else 's'}{isa})"
    if kernels:  # a training run: the device and its name
        return f"{env.get('device', '?')} ({env.get('device_name', 'GPU')})"
    return str(env.get("device_name") or env.get("device") or "?")


def past_runs(root: Path, dataset: str, protocol: str) -> list[PastRun]:
    """The finished runs of ``protocol`` on ``dataset`` under the results root ``root``
    (``<root>/<dataset>/<protocol>/``), whose cost is known (:func:`attack_seconds`)."""
    folder = Path(root) / dataset / protocol
    if not folder.is_dir():
        return []
    out = []
    for path in results_files(folder):
        try:
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict) or not isinstance(doc.get("protocol"), dict):
                continue
            if doc["protocol"].get("id") != protocol or protocol_problems(doc):
                continue  # another protocol's, or not conformant: not a measure of this one
            seconds = attack_seconds(doc)
            if seconds is None:
                continue
            config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
            env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
            arch = str(config.get("arch") or "?")
            out.append(PastRun(seconds, device_text(env), bool(config.get("defense")), arch))
        except Exception as exc:  # an odd file must not stop the run this only informs
            logger.debug("past runs: left out %s (%s)", path, exc)
    return out
