"""Train a registered architecture on a registered dataset and store it in the model zoo.

The default recipe is MedMNIST v2's (Yang et al. 2023, Sec. 4): Adam with lr 1e-3, batch 128,
the learning rate multiplied by 0.1 at 50% and 75% of the epochs, cross-entropy (BCE with
logits for multi-label tasks), no augmentation, and the model of the epoch with the best
validation AUC (ties: validation ACC) kept. The test split is evaluated once, on the selected
model only. Runs are deterministic under a seed on CPU.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import benchmark
from benchmark.attacks.gradient import iterative_linf
from benchmark.datasets.base import DATASETS, ImageSplit, load_split
from benchmark.device import pick_device, seed_everything
from benchmark.errors import ConfigError
from benchmark.metrics.classification import _auc, per_class_accuracy
from benchmark.metrics.classification import accuracy as accuracy_metric
from benchmark.metrics.classification import auc as auc_metric
from benchmark.models.base import ImageClassifier, build_model
from benchmark.models.inference import predict
from benchmark.models.zoo import ModelZoo, ZooEntry, model_id
from benchmark.results.io import atomic_write_bytes
from benchmark.results.naming import params_slug
from benchmark.results.provenance import environment, git_commit, utc_now

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card).

    Attributes:
        dataset: registered dataset id.
        arch: registered model id.
        size: image size (default: the dataset's default size).
        epochs: number of epochs (MedMNIST v2 uses 100; choose fewer on a CPU and say so).
        batch_size: minibatch size.
        lr: Adam learning rate.
        milestones: fractions of ``epochs`` at which the lr is multiplied by ``gamma``.
        gamma: lr decay factor.
        seed: seed of initialisation and data order.
        device: "auto", "cpu" or "cuda[:N]".
        channels_last: use the channels-last memory format (about 20% faster on CPU here).
        defense: id or folder of a training-time defense submission (``pgd_at``, ``mpadvt``,
            ...): its ``train(model, x, y)`` gives each minibatch's loss (None: plain CE).
        defense_params: parameter overrides of the defense (e.g. a CPU inner-step budget);
            recorded in the card and, when given, in the model id.
        selection: "auc" keeps the epoch with the best validation AUC (ties: ACC); "robust"
            the best validation balanced accuracy under PGD-``select_steps`` at
            ``select_eps`` among the epochs whose clean balanced accuracy is above chance
            (ties: clean balanced accuracy; see :func:`selection_key`); "auto" is "robust"
            with a defense, else "auc". Balanced, because on an imbalanced split
            (BreastMNIST's validation set is 73 % malignant-free) plain robust accuracy
            prefers the epochs where adversarial training has collapsed to the majority
            class, which no attack can move; above chance, because on RetinaMNIST a
            collapsed epoch's 1/K still beats real classifiers under attack. Only the
            validation split is used: the test split is scored once, on the selected model.
        select_eps: L-inf budget of the selection attack (default 4/255, Xu et al. Table 5).
        select_steps: steps of the selection attack (default 4, Xu et al. Table 5).
        init_from: zoo id of a model of the same architecture and dataset whose weights start
            the training (adversarial fine-tuning on a CPU budget); None: random init. The
            card records the id and its checkpoint sha256.
    """

    dataset: str
    arch: str
    size: int | None = None
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    seed: int = 0
    device: str = "auto"
    channels_last: bool = True
    defense: str | None = None
    defense_params: dict[str, Any] = field(default_factory=dict)
    selection: str = "auto"
    select_eps: float = 4 / 255
    select_steps: int = 4
    init_from: str | None = None

    @property
    def selection_rule(self) -> str:
        """The resolved selection rule, "auc" or "robust"."""
        if self.selection == "auto":
            return "robust" if self.defense else "auc"
        return self.selection

    def validate(self) -> None:
        """Raise :class:`ConfigError` for invalid values."""
        if self.selection not in ("auto", "auc", "robust"):
            raise ConfigError(f"--select must be auto, auc or robust, got '{self.selection}'")
        if self.select_steps < 1 or not 0 < self.select_eps <= 1:
            raise ConfigError("--select-steps must be >= 1 and --select-eps in (0, 1]")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")


def _loss(logits: torch.Tensor, y: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return (
        F.binary_cross_entropy_with_logits(logits, y) if multi_label else F.cross_entropy(logits, y)
    )


def _val_scores(model: ImageClassifier, split: ImageSplit) -> tuple[float, float, float]:
    """Validation accuracy, AUC and balanced accuracy (multi-label: the accuracy), from one
    prediction pass."""
    pred = predict(model, split)
    acc = accuracy_metric(pred)["value"]
    auc = _auc(pred.probs, pred.labels, pred.multi_label)
    balanced = acc if pred.multi_label else per_class_accuracy(pred)["balanced_accuracy"]
    return acc, auc, balanced


SELECTION_VERSION = 2
"""Bumped whenever :func:`selection_key` changes, so that an interrupted run saved under the
old rule starts afresh instead of mixing two rules."""


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


def _balanced(hit: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over the classes present of the share of ``hit`` (per-class recall of a
    correctness mask): 1/K for a model that answers one class whatever the balance."""
    rates = [hit[labels == c].float().mean() for c in torch.unique(labels)]
    return float(torch.stack(rates).mean()) if rates else 0.0


def _val_robust_accuracy(
    model: ImageClassifier, split: ImageSplit, eps: float, steps: int, seed: int
) -> tuple[float, float]:
    """Validation accuracy under PGD (random start, alpha 2.5 eps/steps), batched and seeded,
    and its balanced form (per-class recall under attack, averaged; multi-label: the
    accuracy)."""
    was_training = model.training
    model.eval()
    hits, labels = [], []
    with torch.random.fork_rng(devices=[]):  # the training RNG stream is left untouched
        torch.manual_seed(seed)
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
    return acc, (acc if model.multi_label else _balanced(hit, y.long()))


def _load_training_defense(config: TrainConfig) -> tuple[Any, Any]:
    """The submission and built defense of ``config.defense`` (a training-kind defense),
    validated before any work."""
    from benchmark.defenses import load_submission
    from benchmark.testing.conformance import validate_submission

    sub = load_submission(config.defense)  # type: ignore[arg-type]
    if sub.meta.kind != "training":
        raise ConfigError(
            f"defense '{sub.id}' is a {sub.meta.kind} defense, not a training one; evaluate "
            f"it with `bench evaluate --defense {sub.id}`"
        )
    validate_submission(sub, **config.defense_params)
    meta = DATASETS.get(config.dataset).meta
    defense = sub.build(seed=defense_seed(config.seed), **config.defense_params)
    if meta.multi_label and not getattr(defense, "multi_label_ok", False):
        raise ConfigError(
            f"defense '{sub.id}' is defined for single-label tasks and {config.dataset} is "
            "multi-label; use pgd_at or mpadvt"
        )
    return sub, defense


def defense_seed(seed: int) -> int:
    """Seed of a training defense's generator: derived from the run seed, so its stream is
    not the data order's."""
    return (seed * 1_000_003 + 17) % (2**31)


def defense_tag(defense: str, params: dict[str, Any]) -> str:
    """The model-id suffix of a robust model: ``pgd_at`` or ``pgd_at_steps=3``."""
    return f"{defense}_{params_slug(params)}" if params else defense


PARTIAL_DIR = ".partial"
"""Zoo sub-folder of the end-of-epoch states of unfinished training runs."""


def partial_path(zoo: ModelZoo, mid: str) -> Path:
    """Where the unfinished run of model ``mid`` keeps its last end-of-epoch state."""
    return zoo.root / PARTIAL_DIR / f"{mid}.pt"


def _save_partial(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_partial(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state of an interrupted run with the same fingerprint, else None (a
    different recipe, different data or an unreadable file start the run afresh)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: start afresh
        logger.warning("ignoring unreadable partial training state %s (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        logger.warning(
            "ignoring the partial training state %s: it is of a different recipe, data or "
            "starting model; this run starts afresh and replaces it",
            path,
        )
        return None
    return state


def train_model(
    config: TrainConfig,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    zoo: ModelZoo | None = None,
    progress: bool | None = None,
    resume: bool = True,
) -> ZooEntry:
    """Train per ``config``, keep the best-validation model, and save it with its card.

    After every epoch the run's whole state (weights, optimizer, learning-rate schedule, the
    data-order, global and defense random streams, the history and the best model so far) is
    written atomically under the zoo's ``.partial/`` folder. A run interrupted between epochs
    resumes from there when started again with the same recipe and data, and ends with the
    same weights as an uninterrupted run (on CPU); the card lists the epochs it resumed at.

    Args:
        config: the run's settings.
        data_dir: data root (``--data-dir``/``$BENCH_DATA_DIR``).
        download: let MedMNIST download a missing file.
        zoo: destination zoo (default: ``ModelZoo()``).
        progress: show a progress bar (default: only on a terminal).
        resume: continue an interrupted run of the same recipe (False: start afresh).

    Returns:
        The zoo entry of the saved model.
    """
    config.validate()
    sub = defense = None
    if config.defense is not None:
        sub, defense = _load_training_defense(config)
    git = git_commit()  # the code that runs is the code checked out now
    zoo = zoo or ModelZoo()
    meta = DATASETS.get(config.dataset).meta
    size = config.size or meta.default_size
    device = pick_device(config.device)
    seed_everything(config.seed)
    splits = {
        s: load_split(config.dataset, s, size=size, data_dir=data_dir, download=download)
        for s in ("train", "val", "test")
    }
    model = build_model(
        config.arch,
        in_channels=meta.n_channels,
        num_classes=meta.num_classes,
        image_size=size,
        multi_label=meta.multi_label,
    ).to(device)
    init = None
    if config.init_from is not None:
        start_model, start_entry = zoo.load(
            config.init_from,
            expect={"dataset": config.dataset, "arch": config.arch, "image_size": size},
        )
        model.load_state_dict(start_model.state_dict())
        init = {
            "model_id": config.init_from,
            "checkpoint_sha256": start_entry.card["checkpoint"]["sha256"],
        }
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    milestones = sorted({int(f * config.epochs) for f in config.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=milestones, gamma=config.gamma
    )
    generator = torch.Generator().manual_seed(config.seed)
    train = splits["train"]
    show = sys.stderr.isatty() if progress is None else progress
    history: list[dict[str, Any]] = []
    best: tuple[float, ...] = (-1.0, -1.0, -1.0)
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    resumed: list[dict[str, Any]] = []
    first_epoch, elapsed = 1, 0.0
    tag = defense_tag(sub.id, config.defense_params) if sub is not None else None
    mid = model_id(config.arch, config.dataset, size, config.seed, tag)
    partial = partial_path(zoo, mid)
    fingerprint = json.dumps(
        {
            "config": {k: v for k, v in asdict(config).items() if k != "device"},
            "size": size,
            "data": {s: sp.sha256 for s, sp in splits.items()},
            "init": init,
            "defense": defense.params if defense is not None else None,
            "selection_version": SELECTION_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    saved = _load_partial(partial, fingerprint) if resume else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        model = model.to(memory_format=memory_format)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.last_epoch = int(saved["epoch"])
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        if defense is not None:
            defense.set_rng_state(saved["defense_rng"])
        history, best_epoch = list(saved["history"]), int(saved["best_epoch"])
        best, best_state = tuple(saved["best"]), saved["best_state"]
        resumed = [*saved["resumed"], {"epoch": int(saved["epoch"]) + 1, "git": git}]
        first_epoch, elapsed = int(saved["epoch"]) + 1, float(saved["seconds"])
        logger.info(
            "resuming %s at epoch %d of %d from %s", mid, first_epoch, config.epochs, partial
        )
    start = time.perf_counter() - elapsed
    steps = (len(train) + config.batch_size - 1) // config.batch_size
    with tqdm(
        total=config.epochs * steps,
        initial=(first_epoch - 1) * steps,
        disable=not show,
        desc=f"train {config.arch}",
        unit="batch",
    ) as bar:
        for epoch in range(first_epoch, config.epochs + 1):
            model.train()
            order = torch.randperm(len(train), generator=generator)
            total, count = 0.0, 0
            for x, y in train.batches(config.batch_size, order=order, device=device):
                x = x.contiguous(memory_format=memory_format)
                if defense is not None:
                    loss = defense.train(model, x, y)
                else:
                    loss = _loss(model(x), y, meta.multi_label)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(y)
                count += len(y)
                bar.update(1)
            scheduler.step()
            val_acc, val_auc, val_balanced = _val_scores(model, splits["val"])
            record = {
                "epoch": epoch,
                "train_loss": total / count,
                "val_acc": val_acc,
                "val_auc": val_auc,
            }
            if config.selection_rule == "robust":
                record["val_robust_acc"], record["val_robust_balanced_acc"] = _val_robust_accuracy(
                    model, splits["val"], config.select_eps, config.select_steps, config.seed
                )
                record["val_balanced_acc"] = val_balanced
                model.train()
            record["seconds"] = time.perf_counter() - start
            history.append(record)
            bar.set_postfix(loss=f"{total / count:.3f}", val_auc=f"{val_auc:.3f}")
            logger.info(
                "epoch %d loss %.4f val acc %.4f auc %.4f", epoch, total / count, val_acc, val_auc
            )
            key = selection_key(record, config.selection_rule, meta.num_classes, meta.multi_label)
            if key > best:
                best, best_epoch = key, epoch
                best_state = copy.deepcopy(model.state_dict())
            if epoch < config.epochs:
                _save_partial(
                    partial,
                    {
                        "fingerprint": fingerprint,
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        **(
                            {"cuda_rng": torch.cuda.get_rng_state(device)}
                            if device.type == "cuda"
                            else {}
                        ),
                        "defense_rng": defense.rng_state() if defense is not None else {},
                        "history": history,
                        "best": list(best),
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "resumed": resumed,
                        "seconds": time.perf_counter() - start,
                    },
                )
    train_seconds = time.perf_counter() - start
    assert best_state is not None
    model.load_state_dict(best_state)
    model = model.to(memory_format=torch.contiguous_format)
    test_pred = predict(model, splits["test"], seed=config.seed)
    val_pred = predict(model, splits["val"], seed=config.seed)
    recipe = asdict(config)
    rule = config.selection_rule
    recipe.update(
        size=size,
        milestones_epochs=milestones,
        optimizer="adam",
        defense=sub.id if sub is not None else None,
        loss=(
            f"defense '{sub.id}' train()"
            if sub is not None
            else "bce_with_logits"
            if meta.multi_label
            else "cross_entropy"
        ),
        selection=(
            f"best validation balanced accuracy under PGD-{config.select_steps} at eps "
            f"{config.select_eps:.6g} among epochs whose clean validation balanced accuracy "
            "is above chance (ties: clean validation balanced accuracy)"
            if rule == "robust"
            else "best validation AUC (ties: validation ACC)"
        ),
        augmentation="none",
        init=init or "random",
    )
    card = {
        "model_id": mid,
        "dataset": config.dataset,
        "arch": config.arch,
        "defense": (
            {**sub.record(), "params": dict(sorted(defense.params.items())), "tag": tag}
            if sub is not None and defense is not None
            else None
        ),
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
        "best_epoch": best_epoch,
        "metrics": {
            "val": {"acc": accuracy_metric(val_pred), "auc": auc_metric(val_pred)},
            "test": {"acc": accuracy_metric(test_pred), "auc": auc_metric(test_pred)},
        },
        "history": history,
        "training_time_seconds": train_seconds,
        "training_time_hours": train_seconds / 3600.0,
        "resumed": resumed,
        "data": {
            s: {"sha256": sp.sha256, "n": len(sp), "source": Path(sp.source_path).name}
            for s, sp in splits.items()
        },
        "benchmark_version": benchmark.__version__,
        "git": git,
        "environment": environment(device),
        "created_at": utc_now(),
    }
    entry = zoo.save(model.cpu(), card)
    partial.unlink(missing_ok=True)
    logger.info(
        "trained %s in %.1f s: test acc %.4f auc %.4f",
        card["model_id"],
        train_seconds,
        card["metrics"]["test"]["acc"]["value"],
        card["metrics"]["test"]["auc"]["value"],
    )
    return entry
