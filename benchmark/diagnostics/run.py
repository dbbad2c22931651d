"""``bench diagnose``: the figures of one results file, from its cached adversarial examples.

:func:`diagnose` rebuilds the run's evaluation plan from the results file (the same data
subset, model checkpoint, defense and attack passes, so the same cache keys), picks a seeded
handful of test images per class and, per attack family, the run's pass closest to 8/255
under the strongest threat model the run has. The adversarial examples of those images come from
the run's cache when it is warm (no attack work); on a cold cache only the images a figure
shows are crafted again, with the run's attack and seed (such examples may differ from the
run's, which attacked whole batches: the caption says "recrafted").

Figures (each a PNG sprite with a caption, alt text and per-tile labels in ``index.json``):

- ``gallery``: clean image, adversarial image per family, the perturbation amplified, and the
  purified image of a preprocessing defense, each with the scoring model's label and
  confidence (wrong ones marked);
- ``saliency``: input gradient and Grad-CAM of the base and of the defended model, clean vs
  adversarial (Xu et al. Comp. 2, MedRDF Fig. 3);
- ``features``: feature maps at a stated layer, clean vs adversarial (MedRDF Fig. 4);
- ``embedding``: t-SNE of three layers, training images as the control group, clean and
  adversarial test images (Xu et al. Comp. 3);
- ``robust_metric``: for a voting defense (MedRDF), the images with the lowest Robust Metric
  ``RM = K (n_A - n_B) / n`` (MedRDF eq. 9) that a doctor should re-check (MedRDF Fig. 5).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from benchmark.diagnostics import figures
from benchmark.diagnostics.examples import Shown, adversarial_of, pick_images, pick_passes
from benchmark.errors import CheckpointError, ConfigError
from benchmark.evaluation.replay import config_from_result
from benchmark.results.diagnostics import (
    INDEX,
    INDEX_SCHEMA,
    diagnostics_folder,
    sha256_bytes,
)
from benchmark.results.io import atomic_write_bytes
from benchmark.results.schema import read_result

logger = logging.getLogger(__name__)


@dataclass
class DiagnoseReport:
    """What :func:`diagnose` wrote: the folder, the figures, how many shown images' examples
    are not the run's own (0 when its cache was warm) and how many images it attacked."""

    folder: Path
    figures: list[str]
    recrafted: int
    attacked: int


def diagnose(
    result: str | Path,
    *,
    data_dir: str | Path | None = None,
    zoo: str | Path | None = None,
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    per_class: int = 2,
    families: int = 3,
    embed_points: int = 96,
    isolation: str | None = None,
) -> DiagnoseReport:
    """Draw the figures of the results file ``result`` (see the module docstring) into
    ``out`` (default: :func:`~benchmark.results.diagnostics.diagnostics_folder`).

    Raises:
        CheckpointError: the zoo's checkpoint is not the one the result evaluated.
        ConfigError: the result cannot be re-planned (e.g. a clean-only run).
    """
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.plan import build_plan
    from benchmark.models.zoo import ModelZoo

    result = Path(result)
    raw = result.read_bytes()
    doc = read_result(result)
    if not doc.get("attacks"):
        raise ConfigError(f"{result.name} has no attack cells: there is nothing to diagnose")
    config = config_from_result(doc, device)
    cache = AdversarialCache(cache_dir)
    plan = build_plan(
        config, data_dir=data_dir, zoo=ModelZoo(zoo), cache=cache, isolation=isolation
    )
    try:
        deployed = plan.deployed.card["checkpoint"]["sha256"]  # robust model or base
        for block, have in ((doc.get("model"), deployed), (doc.get("base_model"), plan.model_sha)):
            recorded = (block or {}).get("checkpoint_sha256")
            if recorded and recorded != have:
                raise CheckpointError(
                    f"the zoo's {block.get('model_id')} is {have[:12]}, the result evaluated "
                    f"{recorded[:12]}: import that checkpoint (bench zoo import/pull) first"
                )
        seed = int(config.seed)
        positions = pick_images(plan.split.labels, per_class, seed)
        shown = Shown(
            positions,
            plan.split.images[positions].float().div(255.0),
            plan.split.labels[positions],
        )
        for p in pick_passes(plan, families):
            x_adv, source = adversarial_of(plan, p, positions, cache)
            shown.adversarial[p.cell.attack] = x_adv
            shown.passes[p.cell.attack] = p
            shown.recrafted[p.cell.attack] = 0 if source == "run" else len(positions)
            shown.attacked[p.cell.attack] = len(positions) if source == "attacked" else 0
        for module in (plan.model, plan.scorer):  # the figures are drawn in eval mode
            module.eval()
        if not shown.adversarial:
            raise ConfigError(f"{result.name} has no bounded L-inf attack to show")
        drawn = figures.draw_all(
            plan, shown, doc, cache=cache, embed_points=embed_points, data_dir=data_dir
        )
    finally:
        plan.close()
    folder = Path(out) if out is not None else diagnostics_folder(result)
    folder.mkdir(parents=True, exist_ok=True)
    index_figures = []
    for fig in drawn.figures:
        files = {}
        for name, data in fig.pop("_files", {}).items():
            atomic_write_bytes(folder / name, data)
            files[name] = sha256_bytes(data)
        index_figures.append({**fig, "files": files})
    recrafted = sum(shown.recrafted.values()) + drawn.recrafted
    attacked = sum(shown.attacked.values()) + drawn.attacked
    index = {
        "schema": INDEX_SCHEMA,
        "result": {"file": result.name, "sha256": sha256_bytes(raw), "run_id": doc["run_id"]},
        "model": {
            "id": plan.model_id,
            "checkpoint_sha256": deployed,
            "base_checkpoint_sha256": plan.model_sha,
        },
        "seed": seed,
        "images": [int(i) for i in plan.indices[positions].tolist()],
        "recrafted": recrafted,
        "figures": index_figures,
    }
    text = json.dumps(index, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(folder / INDEX, text.encode())
    logger.info(
        "%d figures of %s in %s (%d images' examples not the run's own, %d attacked now)",
        len(index_figures),
        result.name,
        folder,
        recrafted,
        attacked,
    )
    return DiagnoseReport(folder, [f["id"] for f in index_figures], recrafted, attacked)


__all__ = ["DiagnoseReport", "diagnose"]
