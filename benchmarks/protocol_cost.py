"""Figure 10: what a protocol run costs. For every protocol run found (published or not): the
wall time of its attack work per model and dataset, on the device it ran on, split into the
time the attacked model's forward and backward passes took and the rest (the attacks' own
arithmetic, Python, data movement), and per sub-attack where the run's cells record it.

The model's share is measured, not modelled: each computed attack cell and each convergence
pass records the seconds spent inside the model's forward and backward passes
(:class:`benchmark.models.pass_timer.PassTimer`) beside its wall time. A cell loaded from the
cache cost nothing and is reported as cached; runs older than that recording show their wall
time only.

Usage: python benchmarks/protocol_cost.py [RESULTS_ROOT_OR_FILE ...]
(default: `leaderboard/results`). Appends one line per run to `history.jsonl` unless
`--no-history` is given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from common import ROOT, report

from benchmark.results.cost import device_text
from benchmark.results.protocols import CURRENT_PROTOCOL


def _files(args: list[str]) -> list[Path]:
    paths = [Path(a) for a in args] or [ROOT / "leaderboard" / "results"]
    files: list[Path] = []
    for p in paths:
        if not p.exists():
            sys.exit(f"error: {p} does not exist; pass a results folder or results JSON files")
        files.extend(sorted(p.rglob("*.json")) if p.is_dir() else [p])
    return files


def run_cost(doc: dict[str, Any]) -> dict[str, Any]:
    """The cost figure of one protocol run's results document."""
    device = device_text(doc.get("environment", {}))
    wall = forward = backward = 0.0
    timed = True
    cached = 0
    per_cell: dict[str, float] = {}
    for block in doc.get("attacks", []):
        timing = block.get("timing", {})
        if timing.get("cached"):
            cached += 1
            continue
        wall += timing.get("seconds", 0.0)
        per_cell[block["cell_id"]] = round(timing.get("seconds", 0.0), 1)
        if "model_forward_seconds" not in timing:
            timed = False
        forward += timing.get("model_forward_seconds", 0.0)
        backward += timing.get("model_backward_seconds", 0.0)
    for budget in (doc.get("convergence") or {}).get("budgets", []):
        wall += budget.get("seconds", 0.0)
        per_cell[f"convergence_{budget['eps_label']}"] = round(budget.get("seconds", 0.0), 1)
        if "model_forward_seconds" not in budget:
            timed = False
        forward += budget.get("model_forward_seconds", 0.0)
        backward += budget.get("model_backward_seconds", 0.0)
    values: dict[str, Any] = {
        "run": f"{doc['config']['dataset']}/{doc['config']['model_id']}"
        + (f"/{doc['config']['defense']}" if doc["config"].get("defense") else ""),
        "protocol": f"{doc['protocol']['id']} v{doc['protocol']['version']}",
        "device": device,
        "run_commit": (doc.get("git") or {}).get("commit", "?")[:7],
        "images": doc["data"]["n"],
        "attack_seconds": round(wall, 1),
        "run_seconds": round(doc.get("timing", {}).get("seconds", 0.0), 1),
        "cells_cached": cached,
        "seconds_per_cell": per_cell,
    }
    if timed and wall > 0:
        values["model_forward_share"] = round(forward / wall, 3)
        values["model_backward_share"] = round(backward / wall, 3)
        values["other_share"] = round(1 - (forward + backward) / wall, 3)
    else:
        values["model_share"] = "not recorded (run older than the pass timing)"
    return values


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--no-history"]
    append = "--no-history" not in sys.argv[1:]
    found = 0
    for path in _files(args):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        # Evaluation runs of a protocol only (a transfer matrix records its protocol too, and
        # its cost in its own `cost` block).
        if not isinstance(doc, dict) or not doc.get("protocol") or "config" not in doc:
            continue
        found += 1
        report("protocol_cost", run_cost(doc), append=append)
    if not found:
        sys.exit(
            f"error: no protocol run found; run `bench evaluate --protocol {CURRENT_PROTOCOL.id}"
            " ...`"
        )


if __name__ == "__main__":
    main()
