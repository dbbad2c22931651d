"""One training epoch: the optimiser, the minibatch loss (plain or the defense's) and progress.

The recipe is MedMNIST v2's (Yang et al. 2023, Sec. 4): Adam, the learning rate multiplied by
``gamma`` at fixed fractions of the epochs, cross-entropy (BCE with logits for multi-label
tasks) and no augmentation. A training-time defense replaces the loss by its ``train(model,
x, y)`` (e.g. PGD adversarial training, Xu et al. 2021 Sec. 4.5 eq. 6).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from benchmark.datasets.base import ImageSplit
from benchmark.defenses.base import Defense
from benchmark.training.config import TrainConfig


def loss_fn(logits: torch.Tensor, y: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """The recipe's loss: cross-entropy, or BCE with logits for multi-label tasks."""
    return (
        F.binary_cross_entropy_with_logits(logits, y) if multi_label else F.cross_entropy(logits, y)
    )


def build_optimizer(
    model: torch.nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR, list[int]]:
    """Adam at ``config.lr`` and its step schedule; also the epochs at which the lr decays."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    milestones = sorted({int(f * config.epochs) for f in config.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=milestones, gamma=config.gamma
    )
    return optimizer, scheduler, milestones


def train_epoch(
    model: torch.nn.Module,
    train: ImageSplit,
    order: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    device: torch.device,
    memory_format: torch.memory_format,
    defense: Defense | None,
    multi_label: bool,
    bar: tqdm | None = None,
) -> float:
    """One pass over ``train`` in ``order``, one optimiser step per minibatch.

    Args:
        model: the model, in train mode.
        train: the training split.
        order: the permutation of its samples for this epoch.
        optimizer: the optimiser to step.
        batch_size: minibatch size.
        device: where the minibatches go.
        memory_format: memory format of the minibatches (the model's).
        defense: a training-time defense whose ``train(model, x, y)`` gives the loss, or None
            for :func:`loss_fn`.
        multi_label: whether the task is multi-label (BCE).
        bar: a progress bar advanced once per minibatch (its postfix shows the running loss).

    Returns:
        The epoch's mean minibatch loss, weighted by minibatch size.
    """
    total, count = 0.0, 0
    for x, y in train.batches(batch_size, order=order, device=device):
        x = x.contiguous(memory_format=memory_format)
        loss = (
            defense.train(model, x, y) if defense is not None else loss_fn(model(x), y, multi_label)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total / count:.3f}", refresh=False)
    return total / count


@dataclass
class TrainingRun:
    """The objects a training run steps through its epochs.

    Attributes:
        model: the model being trained (in ``memory_format``).
        optimizer: Adam (:func:`build_optimizer`).
        scheduler: its step schedule.
        milestones: the epochs after which the learning rate decays.
        generator: the data-order random stream (one permutation per epoch).
        device: where the model and the minibatches live.
        memory_format: the model's and the minibatches' memory format.
        defense: the training-time defense giving the loss, or None.
        multi_label: whether the task is multi-label.
        batch_size: minibatch size.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    milestones: list[int]
    generator: torch.Generator
    device: torch.device
    memory_format: torch.memory_format
    defense: Defense | None
    multi_label: bool
    batch_size: int

    @classmethod
    def create(
        cls,
        model: torch.nn.Module,
        config: TrainConfig,
        device: torch.device,
        defense: Defense | None,
        multi_label: bool,
    ) -> TrainingRun:
        """Put ``model`` in the run's memory format and build its optimiser, schedule and
        data-order generator (seeded with ``config.seed``)."""
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        optimizer, scheduler, milestones = build_optimizer(model, config)
        generator = torch.Generator().manual_seed(config.seed)
        return cls(
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            milestones=milestones,
            generator=generator,
            device=device,
            memory_format=memory_format,
            defense=defense,
            multi_label=multi_label,
            batch_size=config.batch_size,
        )

    def steps(self, train: ImageSplit) -> int:
        """Minibatches per epoch."""
        return (len(train) + self.batch_size - 1) // self.batch_size

    def epoch(self, train: ImageSplit, bar: tqdm | None = None) -> float:
        """Train one epoch in a fresh data order, then step the schedule; the mean loss."""
        self.model.train()
        order = torch.randperm(len(train), generator=self.generator)
        loss = train_epoch(
            self.model,
            train,
            order,
            optimizer=self.optimizer,
            batch_size=self.batch_size,
            device=self.device,
            memory_format=self.memory_format,
            defense=self.defense,
            multi_label=self.multi_label,
            bar=bar,
        )
        self.scheduler.step()
        return loss


@contextlib.contextmanager
def progress_bar(
    config: TrainConfig, steps: int, done: int, progress: bool | None
) -> Iterator[tqdm]:
    """A bar over every minibatch of the run (``done`` epochs already finished), shown only on
    a terminal unless ``progress`` says otherwise; log lines are written above it, not through
    it."""
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=config.epochs * steps,
        initial=done * steps,
        disable=not show,
        desc=f"train {config.arch}",
        unit="batch",
    )
    with bar, logging_redirect_tqdm() if show else contextlib.nullcontext():
        yield bar
