"""A tiny, fast CNN for tests and smoke runs (not a benchmark model)."""

from __future__ import annotations

from torch import nn

from benchmark.models.base import MODELS, ModelMeta


@MODELS.register(
    "tiny_cnn",
    meta=ModelMeta(
        family="tiny",
        description="Two-layer CNN for tests and CPU smoke runs (about 20k parameters)",
        min_size=8,
    ),
)
def tiny_cnn(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """Two 3x3 conv blocks, global average pooling and a linear layer."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )
