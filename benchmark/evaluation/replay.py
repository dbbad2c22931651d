"""Re-planning a published run from its results file.

A results file records everything that fixed its numbers: dataset, checkpoint, defense and
parameters, threat models, EOT draws, protocol or attack cells, seed and batch size.
:func:`config_from_result` turns it back into the :class:`EvaluationConfig` of that run, so a
later tool rebuilds the same plan (the same images, pipeline, passes and cache keys):
``bench diagnose`` draws a run's figures from it, ``bench transfer`` scores a board entry's
deployed pipeline exactly as its run scored it.
"""

from __future__ import annotations

import json
from typing import Any


def config_from_result(doc: dict[str, Any], device: str = "auto"):
    """The :class:`EvaluationConfig` that reproduces ``doc``'s passes (and cache keys)."""
    from benchmark.attacks.base import ATTACKS
    from benchmark.attacks.presets import AttackCell
    from benchmark.evaluation.config import EvaluationConfig

    cfg = doc["config"]
    protocol = (doc.get("protocol") or {}).get("id")
    config = EvaluationConfig.from_options(
        dataset=cfg["dataset"],
        arch=cfg["arch"],
        protocol=protocol,
        defense=cfg.get("defense"),
        defense_params=[
            f"{k}={json.dumps(v)}" for k, v in (cfg.get("defense_params") or {}).items()
        ],
        threat_models=cfg.get("threat_models") or ("oblivious",),
        eot_samples=int(cfg.get("eot_samples", 20)),
        adaptive_gradient=cfg.get("adaptive_gradient", "exact"),
        n_examples=cfg.get("n_examples"),
        subset_seed=cfg.get("subset_seed"),
        size=cfg.get("image_size"),
        seed=int(cfg.get("seed", 0)),
        batch_size=str(cfg.get("batch_size", 256)),
        device=device,
        sanity_attack=protocol is not None,  # a protocol fixes it (refuses False)
        draws=int(cfg.get("draws", 1)),
    )
    config.sanity_attack = False  # a replay scores the run's cells; it needs no sanity cell
    if protocol is None:  # the run's cells, with their resolved parameters
        cells = []
        for block in doc.get("attacks") or []:
            defaults = ATTACKS.get(block["attack"]).defaults
            params = {  # the overrides: what the cell id of the run names
                k: v
                for k, v in ((block.get("config") or {}).get("params") or {}).items()
                if k in defaults and defaults[k] != v
            }
            cell = AttackCell.make(block["attack"], block["eps"], **params)
            if cell not in cells:
                cells.append(cell)
        config.attacks = cells
        config.suite = cfg.get("suite")
    return config


__all__ = ["config_from_result"]
