"""The two sides of a transfer matrix (:mod:`benchmark.evaluation.transfer_matrix`): the
targets (each board entry's deployed pipeline, re-planned from one of its results files, or a
bare zoo model under its board entry's key) and the sources (the checkpoints they deploy)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.errors import CheckpointError
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.plan import EvaluationPlan, build_plan
from benchmark.evaluation.replay import config_from_result
from benchmark.metrics.adversarial import correct_mask
from benchmark.metrics.base import scalar, wilson_interval
from benchmark.models.inference import predict_images
from benchmark.models.zoo import ModelZoo
from benchmark.results.diagnostics import results_files, sha256_bytes
from benchmark.results.naming import defense_label
from benchmark.results.outcomes import outcomes_block
from benchmark.results.schema import read_result
from benchmark.results.view import RunView, entry_key


@dataclass
class Source:
    """A checkpoint the attacks are crafted on."""

    model_id: str
    sha256: str
    arch: str
    model: torch.nn.Module
    defense: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "arch": self.arch,
            "checkpoint_sha256": self.sha256,
            "defense": self.defense,
        }


@dataclass
class Target:
    """A pipeline that scores the examples: a board entry's plan, or a bare zoo model."""

    key: str
    label: str
    model_id: str
    arch: str
    deployed_sha256: str
    plan: EvaluationPlan | None = None
    model: torch.nn.Module | None = None
    result: dict[str, str] | None = None
    defense: dict[str, Any] | None = None
    draws: int = 1
    clean: np.ndarray | None = field(default=None, repr=False)

    def correct(self, images: torch.Tensor, split: Any, batch_size: int, seed: int) -> np.ndarray:
        """Per-image correctness of ``images`` (standing for ``split``'s samples)."""
        if self.plan is not None:
            pred, _, _ = self.plan.score(images)
        else:
            pred = predict_images(self.model, images, split, batch_size=batch_size, seed=seed)
        return correct_mask(pred)

    def record(self) -> dict[str, Any]:
        assert self.clean is not None
        return {
            "key": self.key,
            "label": self.label,
            "model_id": self.model_id,
            "arch": self.arch,
            "checkpoint_sha256": self.deployed_sha256,
            "defense": self.defense,
            "draws": self.draws,
            "result": self.result,
            "clean": accuracy_block(self.clean),
        }


def _preference(doc: dict[str, Any]) -> tuple[bool, int, str]:
    """Which run of an entry fixes its pipeline: a protocol run first, then the run that
    scores with the most draws of a randomized defense, then the newest."""
    draws = int((doc.get("config") or {}).get("draws") or 1)
    return bool(doc.get("protocol")), draws, str(doc.get("created_at", ""))


def board_results(results_root: Path, dataset: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    """One results file with attack cells per entry of ``dataset`` (by key): its protocol run
    if it has one, else its run with the most draws, else its newest (:func:`_preference`)."""
    chosen: dict[str, tuple[Path, dict[str, Any]]] = {}
    folder = Path(results_root) / dataset
    if not folder.is_dir():
        return chosen
    for path in results_files(folder):
        doc = read_result(path)
        if not doc.get("attacks"):
            continue  # a clean or corruption-only run: not on an L-inf board
        key = RunView(doc).entry_key
        if key not in chosen or _preference(doc) > _preference(chosen[key][1]):
            chosen[key] = (path, doc)
    return dict(sorted(chosen.items()))


def accuracy_block(correct: np.ndarray) -> dict[str, Any]:
    k, n = int(correct.sum()), int(correct.size)
    return {
        "accuracy": scalar(k / max(n, 1), n, wilson_interval(k, n), "wilson"),
        "outcomes": outcomes_block(correct),
    }


def open_target(
    path: Path,
    doc: dict[str, Any],
    root: Path,
    *,
    zoo: ModelZoo,
    data_dir: str | Path | None,
    cache: AdversarialCache,
    device: str,
    isolation: str | None,
) -> Target:
    """The entry of ``doc`` as a target: its run's plan on the whole split."""
    config = config_from_result(doc, device)
    config = replace(config, n_examples=None, subset_seed=None)
    plan = build_plan(config, data_dir=data_dir, zoo=zoo, cache=cache, isolation=isolation)
    try:
        deployed = plan.deployed.card["checkpoint"]["sha256"]
        for block, have in ((doc.get("model"), deployed), (doc.get("base_model"), plan.model_sha)):
            recorded = (block or {}).get("checkpoint_sha256")
            if recorded and recorded != have:
                raise CheckpointError(
                    f"the zoo's {block.get('model_id')} is {have[:12]}, {path.name} evaluated "
                    f"{recorded[:12]}: import that checkpoint (bench zoo import/pull) first"
                )
    except BaseException:
        plan.close()
        raise
    view = RunView(doc)
    defense = None
    if view.defense:
        defense = {
            "id": view.defense,
            "params": view.defense_params,
            "kind": plan.submission.meta.kind,
            "randomized": bool(plan.defense is not None and plan.defense.meta.randomized),
        }
    for module in (plan.model, plan.scorer):
        module.eval()
    return Target(
        key=view.entry_key,
        label=defense_label(view.config),
        model_id=view.model_id,
        arch=view.arch,
        deployed_sha256=deployed,
        plan=plan,
        result={
            "file": path.relative_to(root).as_posix(),
            "sha256": sha256_bytes(path.read_bytes()),
        },
        defense=defense,
        draws=int(config.draws) if defense and defense["randomized"] else 1,
    )


def source_of(target: Target) -> Source:
    """The checkpoint a target deploys, as a source (its bare model, no preprocessing)."""
    plan = target.plan
    assert plan is not None
    if plan.training_defense:
        card = plan.deployed.card
        return Source(
            card["model_id"],
            target.deployed_sha256,
            target.arch,
            plan.scorer,
            {"id": target.defense["id"], "params": target.defense["params"]},
        )
    return Source(plan.model_id, plan.model_sha, target.arch, plan.model)


def zoo_entry(
    card: dict[str, Any], dataset: str, size: int, sha: str
) -> tuple[str, str, dict[str, Any] | None]:
    """The entry key, label and defense a zoo model would have on the boards: an undefended
    model is its own entry; a training-time defense's robust model is the entry of its base
    model id under that defense and the parameters it was trained with (what ``bench
    evaluate --defense`` names), with the robust checkpoint."""
    from benchmark.models.zoo import model_id

    defense = card.get("defense")
    if not defense:
        return entry_key(dataset, card["model_id"], sha), "none", None
    params = dict((card.get("recipe") or {}).get("defense_params") or {})
    base = model_id(card["arch"], dataset, size, int(card["seed"]))
    key = entry_key(dataset, base, sha, defense["id"], params)
    label = defense_label({"defense": defense["id"], "defense_params": params})
    return key, label, {"id": defense["id"], "params": params}


__all__ = [
    "Source",
    "Target",
    "accuracy_block",
    "board_results",
    "open_target",
    "source_of",
    "zoo_entry",
]
