"""The settings of a training run (:class:`TrainConfig`) and their validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import ConfigError

SELECTION_RULES = ("auto", "auc", "robust")
"""Values of :attr:`TrainConfig.selection`."""


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
            (ties: clean balanced accuracy; see
            :func:`benchmark.training.selection.selection_key`); "auto" is "robust" with a
            defense, else "auc". Balanced, because on an imbalanced split (BreastMNIST's
            validation set is 73 % malignant-free) plain robust accuracy prefers the epochs
            where adversarial training has collapsed to the majority class, which no attack
            can move; above chance, because on RetinaMNIST a collapsed epoch's 1/K still
            beats real classifiers under attack. Only the validation split is used: the test
            split is scored once, on the selected model.
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
        if self.selection not in SELECTION_RULES:
            raise ConfigError(f"--select must be auto, auc or robust, got '{self.selection}'")
        if self.select_steps < 1 or not 0 < self.select_eps <= 1:
            raise ConfigError("--select-steps must be >= 1 and --select-eps in (0, 1]")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
