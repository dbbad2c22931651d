"""Model interface: architecture metadata, the normalising wrapper and the ``MODELS`` registry.

Every model the benchmark evaluates is an :class:`ImageClassifier`: it takes float32 NCHW input
in [0, 1] and normalises internally, so attacks and defenses never see normalised tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmark.registry import Registry


@dataclass(frozen=True)
class ModelMeta:
    """Static description of a registered architecture.

    Attributes:
        family: architecture family ("resnet", "vgg", ...).
        description: one line shown by ``bench list models``.
        reference: paper or URL of the architecture.
        min_size: smallest input side the adapted architecture supports.
    """

    family: str
    description: str
    reference: str = ""
    min_size: int = 28


#: A builder returns the backbone for normalised input: (in_channels, num_classes, size) -> module.
ModelBuilder = Callable[[int, int, int], nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model", meta_type=ModelMeta)


class ImageClassifier(nn.Module):
    """A backbone behind per-channel normalisation; input float32 NCHW in [0, 1], output logits.

    Args:
        backbone: the network applied to normalised input.
        arch: registered architecture id (recorded in checkpoints and results).
        in_channels: expected number of input channels.
        num_classes: number of output logits (classes, or labels for multi-label tasks).
        image_size: expected input side in pixels.
        mean: per-channel mean used for normalisation (MedMNIST convention: 0.5).
        std: per-channel standard deviation (MedMNIST convention: 0.5).
        multi_label: True when the logits are independent sigmoids (BCE), not a softmax.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        arch: str,
        in_channels: int,
        num_classes: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        multi_label: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.arch = arch
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size
        self.multi_label = multi_label
        mean = list(mean) if mean is not None else [0.5] * in_channels
        std = list(std) if std is not None else [0.5] * in_channels
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a float32 NCHW batch with values in [0, 1]."""
        return self.backbone((x - self.mean) / self.std)

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities (softmax) or label probabilities (sigmoid, multi-label)."""
        logits = self(x)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(self.parameters()).device


def build_model(
    arch: str,
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    multi_label: bool = False,
) -> ImageClassifier:
    """Build a registered architecture adapted to the input and the task.

    Raises:
        UnknownNameError: ``arch`` is not registered.
        ConfigError: ``image_size`` is below what the architecture supports.
    """
    from benchmark.errors import ConfigError

    builder = MODELS.get(arch)
    if image_size < builder.meta.min_size:
        raise ConfigError(
            f"model '{arch}' needs inputs of at least {builder.meta.min_size} px, got {image_size}"
        )
    backbone = builder(in_channels, num_classes, image_size)
    return ImageClassifier(
        backbone,
        arch=arch,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        multi_label=multi_label,
    )
