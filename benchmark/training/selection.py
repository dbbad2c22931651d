"""Model selection on the validation split: per-epoch scores and the rule that keeps an epoch.

"auc" is MedMNIST v2's rule (Yang et al. 2023, Sec. 4: the epoch with the best validation
AUC); "robust" ranks epochs by validation balanced accuracy under PGD at the eps and step
count of Xu et al. 2021, Table 5 (see :class:`~benchmark.training.config.TrainConfig`). Only the
validation split is read here; the test split is scored once, on the selected model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.attacks.gradient import iterative_linf
from benchmark.datasets.base import ImageSplit
from benchmark.device import seeded
from benchmark.metrics.classification import _auc, per_class_accuracy
from benchmark.metrics.classification import accuracy as accuracy_metric
from benchmark.models.base import ImageClassifier
from benchmark.models.inference import predict
from benchmark.training.config import TrainConfig

SELECTION_VERSION = 2
"""Bumped whenever :func:`selection_key` changes, so that an interrupted run saved under the
old rule starts afresh instead of mixing two rules."""


def val_scores(model: ImageClassifier, split: ImageSplit) -> tuple[float, float, float]:
    """Validation accuracy, AUC and balanced accuracy (multi-label: the accuracy), from one
    prediction pass."""
    pred = predict(model, split)
    acc = accuracy_metric(pred)["value"]
    auc = _auc(pred.probs, pred.labels, pred.multi_label)
    balanced = acc if pred.multi_label else per_class_accuracy(pred)["balanced_accuracy"]
    return acc, auc, balanced


def selection_key(
    record: dict[str, Any], rule: str, num_classes: int, multi_label: bool
) -> tuple[float, ...]:
    """The key (greater is better) by which an epoch's ``record`` competes for selection.

    "robust": (clean balanced accuracy above chance, robust balanced accuracy, clean balanced
    accuracy). An epoch whose clean balanced accuracy is at chance (1/K: the model answers one
    class, as adversarial training on RetinaMNIST collapses to) loses to every epoch above
    chance: under attack such a model keeps its 1/K balanced accuracy, which no attack can
    lower, and would otherwise beat a real classifier whose robust balanced accuracy is below
    chance. "auc": (validation AUC, NaN counted as -1; validation accuracy; 0).
    """
    if rule == "robust":
        clean = float(record["val_balanced_acc"])
        above = multi_label or clean > 1.0 / max(num_classes, 1) + 1e-6
        return (float(above), float(record["val_robust_balanced_acc"]), clean)
    auc = float(record["val_auc"])
    return (auc if auc == auc else -1.0, float(record["val_acc"]), 0.0)


def balanced_hit_rate(hit: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over the classes present of the share of ``hit`` (per-class recall of a
    correctness mask): 1/K for a model that answers one class whatever the balance."""
    rates = [hit[labels == c].float().mean() for c in torch.unique(labels)]
    return float(torch.stack(rates).mean()) if rates else 0.0


def val_robust_accuracy(
    model: ImageClassifier, split: ImageSplit, eps: float, steps: int, seed: int
) -> tuple[float, float]:
    """Validation accuracy under PGD (random start, alpha 2.5 eps/steps, Madry et al. 2018),
    batched and seeded, and its balanced form (per-class recall under attack, averaged;
    multi-label: the accuracy)."""
    was_training = model.training
    model.eval()
    hits, labels = [], []
    # The training RNG streams are left untouched, the device's too (else every epoch's
    # dropout masks on CUDA would start from the same state).
    with seeded(seed, model.device):
        for x, y in split.batches(256, device=model.device):
            x_adv = iterative_linf(
                model,
                x,
                y,
                eps=eps,
                alpha=2.5 * eps / steps,
                steps=steps,
                random_start=True,
                step_rule="sign",
                multi_label=bool(model.multi_label),
            )
            with torch.no_grad():
                pred = model(x_adv)
            hit = (pred > 0).float().eq(y).all(1) if model.multi_label else pred.argmax(1).eq(y)
            hits.append(hit.cpu())
            labels.append(y.cpu())
    model.train(was_training)
    hit, y = torch.cat(hits), torch.cat(labels)
    acc = float(hit.float().mean()) if len(hit) else 0.0
    return acc, (acc if model.multi_label else balanced_hit_rate(hit, y.long()))


def epoch_record(
    model: ImageClassifier, val: ImageSplit, config: TrainConfig, epoch: int, train_loss: float
) -> dict[str, Any]:
    """The history entry of a finished epoch: its mean training loss and the validation
    scores its selection rule needs (robust ones only under the "robust" rule)."""
    val_acc, val_auc, val_balanced = val_scores(model, val)
    record: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_acc": val_acc,
        "val_auc": val_auc,
    }
    if config.selection_rule == "robust":
        record["val_robust_acc"], record["val_robust_balanced_acc"] = val_robust_accuracy(
            model, val, config.select_eps, config.select_steps, config.seed
        )
        record["val_balanced_acc"] = val_balanced
        model.train()
    return record


@dataclass
class BestEpoch:
    """The best epoch so far under a selection rule, and a copy of its weights.

    Attributes:
        rule: "auc" or "robust" (:attr:`TrainConfig.selection_rule`).
        num_classes: classes of the task (the chance level of the "robust" rule).
        multi_label: whether the task is multi-label.
        key: the best :func:`selection_key` so far.
        epoch: its epoch (0: none yet).
        state: a copy of the model's ``state_dict`` at that epoch.
    """

    rule: str
    num_classes: int
    multi_label: bool
    key: tuple[float, ...] = (-1.0, -1.0, -1.0)
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None

    def offer(self, record: dict[str, Any], model: torch.nn.Module) -> bool:
        """Keep ``model``'s weights if ``record``'s epoch beats the best one; True if kept."""
        key = selection_key(record, self.rule, self.num_classes, self.multi_label)
        if not key > self.key:  # not `<=`: a NaN must never win
            return False
        self.key, self.epoch = key, int(record["epoch"])
        self.state = copy.deepcopy(model.state_dict())
        return True


def selection_description(config: TrainConfig) -> str:
    """The selection rule in words, as the model card's recipe records it."""
    if config.selection_rule == "robust":
        return (
            f"best validation balanced accuracy under PGD-{config.select_steps} at eps "
            f"{config.select_eps:.6g} among epochs whose clean validation balanced accuracy "
            "is above chance (ties: clean validation balanced accuracy)"
        )
    return "best validation AUC (ties: validation ACC)"
