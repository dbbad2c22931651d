"""The model card of a trained model: recipe, selection, metrics, data and provenance.

The card is what the zoo stores next to the weights (``card.json``) and what the evaluation
checks a model against; its recipe records every choice of the run, including the ones the
MedMNIST v2 recipe leaves open (Yang et al. 2023, Sec. 4).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import benchmark
from benchmark.datasets.base import DatasetMeta, ImageSplit
from benchmark.defenses.base import Defense
from benchmark.defenses.submissions import Submission
from benchmark.metrics.base import Predictions
from benchmark.metrics.classification import accuracy as accuracy_metric
from benchmark.metrics.classification import auc as auc_metric
from benchmark.metrics.classification import balanced_accuracy_metric
from benchmark.models.base import ImageClassifier
from benchmark.results.provenance import environment, utc_now
from benchmark.training.config import TrainConfig
from benchmark.training.resume import RunState
from benchmark.training.selection import selection_description


def recipe(
    config: TrainConfig,
    size: int,
    milestones: list[int],
    sub: Submission | None,
    multi_label: bool,
    init: dict[str, Any] | None,
) -> dict[str, Any]:
    """The card's ``recipe``: the config, resolved (size, lr decay epochs, loss, selection
    rule in words, starting weights)."""
    out = asdict(config)
    if sub is not None:
        loss = f"defense '{sub.id}' train()"
    else:
        loss = "bce_with_logits" if multi_label else "cross_entropy"
    out.update(
        size=size,
        milestones_epochs=milestones,
        optimizer="adam",
        defense=sub.id if sub is not None else None,
        loss=loss,
        selection=selection_description(config),
        augmentation="none",
        init=init or "random",
    )
    return out


def defense_record(sub: Submission, defense: Defense, tag: str) -> dict[str, Any]:
    """The card's ``defense`` block: the submission's record, the parameters and the tag."""
    return {**sub.record(), "params": dict(sorted(defense.params.items())), "tag": tag}


def split_metrics(pred: Predictions) -> dict[str, Any]:
    """A split's card metrics: ACC and AUC (MedMNIST v2's), and for a single-label task the
    balanced accuracy with its stratified bootstrap interval, from which the zoo page tells a
    collapsed model (one whose interval contains chance)."""
    out = {"acc": accuracy_metric(pred), "auc": auc_metric(pred)}
    balanced = balanced_accuracy_metric(pred)
    if balanced is not None:
        out["balanced_acc"] = balanced
    return out


def build_card(
    *,
    mid: str,
    config: TrainConfig,
    meta: DatasetMeta,
    size: int,
    model: ImageClassifier,
    recipe: dict[str, Any],
    defense: dict[str, Any] | None,
    state: RunState,
    predictions: dict[str, Predictions],
    splits: dict[str, ImageSplit],
    train_seconds: float,
    git: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """The model card (the zoo adds the checkpoint's sha256 when it saves the weights).

    Args:
        mid: the model id.
        config: the run's settings.
        meta: the dataset's metadata.
        size: the image size trained at.
        model: the selected model (its normalisation is recorded).
        recipe: :func:`recipe`'s output.
        defense: :func:`defense_record`'s output, or None.
        state: the finished run's history, selection and resumptions.
        predictions: the selected model's predictions on "val" and "test".
        splits: the train, val and test splits (their digests, sizes and files).
        train_seconds: training time, resumptions included.
        git: the git commit the run started from.
        device: the device trained on.
    """
    return {
        "model_id": mid,
        "dataset": config.dataset,
        "arch": config.arch,
        "defense": defense,
        "image_size": size,
        "in_channels": meta.n_channels,
        "num_classes": meta.num_classes,
        "multi_label": meta.multi_label,
        "normalization": {
            "mean": model.mean.flatten().tolist(),
            "std": model.std.flatten().tolist(),
        },
        "recipe": recipe,
        "seed": config.seed,
        "epochs": config.epochs,
        "best_epoch": state.best.epoch,
        "metrics": {s: split_metrics(predictions[s]) for s in ("val", "test")},
        "history": state.history,
        "training_time_seconds": train_seconds,
        "training_time_hours": train_seconds / 3600.0,
        "resumed": state.resumed,
        "data": {
            s: {"sha256": sp.sha256, "n": len(sp), "source": Path(sp.source_path).name}
            for s, sp in splits.items()
        },
        "benchmark_version": benchmark.__version__,
        "git": git,
        "environment": environment(device),
        "created_at": utc_now(),
    }
