"""Train a registered architecture on a registered dataset and store it in the model zoo.

The default recipe is MedMNIST v2's (Yang et al. 2023, Sec. 4): Adam with lr 1e-3, batch 128,
the learning rate multiplied by 0.1 at 50% and 75% of the epochs, cross-entropy (BCE with
logits for multi-label tasks), no augmentation, and the model of the epoch with the best
validation AUC (ties: validation ACC) kept. The test split is evaluated once, on the selected
model only. Runs are deterministic under a seed on CPU.

:func:`train_model` only orchestrates; the parts live in :mod:`~benchmark.training.config`,
:mod:`~benchmark.training.defense`, :mod:`~benchmark.training.loop`,
:mod:`~benchmark.training.selection`, :mod:`~benchmark.training.resume` and
:mod:`~benchmark.training.card`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmark.datasets.base import DATASETS, DatasetMeta, ImageSplit, load_split, resolve_size
from benchmark.device import pick_device, seed_everything
from benchmark.errors import ConfigError
from benchmark.metrics.balanced import collapsed_splits
from benchmark.models.base import ImageClassifier, build_model
from benchmark.models.inference import predict
from benchmark.models.zoo import ModelZoo, ZooEntry, model_id
from benchmark.results.provenance import git_commit
from benchmark.training.card import build_card, defense_record, recipe
from benchmark.training.config import TrainConfig
from benchmark.training.defense import defense_tag, load_training_defense
from benchmark.training.loop import TrainingRun, progress_bar
from benchmark.training.resume import (
    RunState,
    load_partial,
    partial_path,
    restore_partial,
    run_fingerprint,
    save_partial,
)
from benchmark.training.selection import BestEpoch, epoch_record

logger = logging.getLogger(__name__)


def _initial_model(
    config: TrainConfig, meta: DatasetMeta, size: int, device: torch.device, zoo: ModelZoo
) -> tuple[ImageClassifier, dict[str, Any] | None]:
    """The freshly initialised model, with ``config.init_from``'s weights if given, and the
    card's record of those starting weights (None: random initialisation)."""
    model = build_model(
        config.arch,
        in_channels=meta.n_channels,
        num_classes=meta.num_classes,
        image_size=size,
        multi_label=meta.multi_label,
    ).to(device)
    if config.init_from is None:
        return model, None
    start_model, start_entry = zoo.load(
        config.init_from,
        expect={"dataset": config.dataset, "arch": config.arch, "image_size": size},
    )
    model.load_state_dict(start_model.state_dict())
    return model, {
        "model_id": config.init_from,
        "checkpoint_sha256": start_entry.card["checkpoint"]["sha256"],
    }


def _fit(
    run: TrainingRun,
    state: RunState,
    config: TrainConfig,
    splits: dict[str, ImageSplit],
    save: Callable[[], None],
    progress: bool | None,
) -> float:
    """Train the epochs after ``state.epoch``, score each on the validation split, keep the
    best (``state.best``) and call ``save`` after every epoch but the last; the training
    time in seconds, resumptions included."""
    start = time.perf_counter() - state.seconds
    train = splits["train"]
    with progress_bar(config, run.steps(train), state.epoch, progress) as bar:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            bar.set_description(f"train {config.arch} epoch {epoch}/{config.epochs}")
            loss = run.epoch(train, bar)
            record = epoch_record(run.model, splits["val"], config, epoch, loss)
            record["seconds"] = time.perf_counter() - start
            state.history.append(record)
            logger.info(
                "epoch %d loss %.4f val acc %.4f auc %.4f",
                *(epoch, loss, record["val_acc"], record["val_auc"]),
            )
            state.best.offer(record, run.model)
            state.epoch = epoch
            if epoch < config.epochs:
                state.seconds = time.perf_counter() - start
                save()
    return time.perf_counter() - start


def train_model(
    config: TrainConfig,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    zoo: ModelZoo | None = None,
    progress: bool | None = None,
    resume: bool = True,
    splits: dict[str, ImageSplit] | None = None,
) -> ZooEntry:
    """Train per ``config``, keep the best-validation model, and save it with its card.

    After every epoch the run's whole state is written atomically under the zoo's
    ``.partial/`` folder (:mod:`benchmark.training.resume`). A run interrupted between epochs
    resumes from there when started again with the same recipe and data, and ends with the
    same weights as an uninterrupted run (on CPU); the card lists the epochs it resumed at.

    Args:
        config: the run's settings.
        data_dir: data root (``--data-dir``/``$BENCH_DATA_DIR``).
        download: let MedMNIST download a missing file.
        zoo: destination zoo (default: ``ModelZoo()``).
        progress: show a progress bar over the minibatches (default: only on a terminal).
        resume: continue an interrupted run of the same recipe (False: start afresh).
        splits: the ``train``, ``val`` and ``test`` splits of ``config.dataset`` to use instead
            of loading them (e.g. subsets for a quick run); the card records their sizes and
            digests, so such a model is told apart from one trained on the official splits.

    Returns:
        The zoo entry of the saved model.
    """
    config.validate()
    sub, defense = load_training_defense(config) if config.defense is not None else (None, None)
    git = git_commit()  # the code that runs is the code checked out now
    zoo = zoo or ModelZoo()
    meta = DATASETS.get(config.dataset).meta
    size = resolve_size(config.dataset, config.size)
    device = pick_device(config.device)
    seed_everything(config.seed)
    if splits is None:
        splits = {
            s: load_split(config.dataset, s, size=size, data_dir=data_dir, download=download)
            for s in ("train", "val", "test")
        }
    elif sorted(splits) != ["test", "train", "val"]:
        raise ConfigError(f"splits must be train, val and test, got {', '.join(sorted(splits))}")
    model, init = _initial_model(config, meta, size, device, zoo)
    run = TrainingRun.create(model, config, device, defense, meta.multi_label)
    tag = defense_tag(sub.id, config.defense_params) if sub is not None else None
    mid = model_id(config.arch, config.dataset, size, config.seed, tag)
    partial = partial_path(zoo, mid)
    fingerprint = run_fingerprint(
        config, size, splits, init, defense, sub.sha256 if sub is not None else None
    )
    state = RunState(BestEpoch(config.selection_rule, meta.num_classes, meta.multi_label))
    saved = load_partial(partial, fingerprint) if resume else None
    if saved is not None:
        restore_partial(saved, state, run, git)
        logger.info(
            "resuming %s at epoch %d of %d from %s", mid, state.epoch + 1, *(config.epochs, partial)
        )
    save = functools.partial(save_partial, partial, fingerprint, state, run)
    seconds = _fit(run, state, config, splits, save, progress)
    assert state.best.state is not None
    run.model.load_state_dict(state.best.state)
    model = run.model.to(memory_format=torch.contiguous_format)
    predictions = {s: predict(model, splits[s], seed=config.seed) for s in ("test", "val")}
    card = build_card(
        mid=mid,
        config=config,
        meta=meta,
        size=size,
        model=model,
        state=state,
        recipe=recipe(config, size, run.milestones, sub, meta.multi_label, init),
        defense=defense_record(sub, defense, tag) if sub and defense and tag else None,
        predictions=predictions,
        splits=splits,
        train_seconds=seconds,
        git=git,
        device=device,
    )
    entry = zoo.save(model.cpu(), card)
    partial.unlink(missing_ok=True)
    acc, auc = (card["metrics"]["test"][m]["value"] for m in ("acc", "auc"))
    logger.info("trained %s in %.1f s: test acc %.4f auc %.4f", mid, seconds, acc, auc)
    collapsed = collapsed_splits(card)
    if collapsed:
        classes = card["metrics"][collapsed[0]]["balanced_acc"]["classes"]
        logger.warning(
            "%s is collapsed: its %s balanced accuracy interval contains chance (1/%d), so it "
            "cannot be told from a constant answer (the boards' collapse check, which keeps a "
            "model from a rank; a smaller training eps or another seed may not collapse)",
            mid,
            " and ".join(collapsed),
            classes,
        )
    return entry


__all__ = ["train_model"]
