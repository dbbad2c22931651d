"""torchvision architectures trained from scratch, adapted to MedMNIST-sized inputs.

Adaptation (MedMNIST v2 practice for 28 px; the standard ImageNet stem from 64 px up):

* first convolution takes 1 or 3 channels;
* below 64 px the stem keeps the resolution: a 3x3 stride-1 first convolution and no max-pool
  (ResNet, DenseNet), stride 1 in MobileNetV2's first convolution, and VGG keeps only its first
  three max-pools;
* the classifier outputs ``num_classes`` logits. VGG-16-BN uses global average pooling and one
  linear layer (the CIFAR-style head): torchvision's 7x7x512 -> 4096 -> 4096 head has 120 M
  parameters and only makes sense at 224 px.

No pretrained weights are used (none can be downloaded here and MedMNIST trains from scratch).
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from benchmark.models.base import MODELS, ModelMeta

SMALL_INPUT = 64  # below this side the stride-1 "MedMNIST" stem is used


def _conv_like(conv: nn.Conv2d, in_channels: int, *, kernel: int, stride: int, padding: int):
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        bias=conv.bias is not None,
    )


def _resnet(factory, in_channels: int, num_classes: int, size: int) -> nn.Module:
    net = factory(weights=None, num_classes=num_classes)
    if size < SMALL_INPUT:
        net.conv1 = _conv_like(net.conv1, in_channels, kernel=3, stride=1, padding=1)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = _conv_like(net.conv1, in_channels, kernel=7, stride=2, padding=3)
    return net


@MODELS.register(
    "resnet18",
    meta=ModelMeta(
        family="resnet",
        description="ResNet-18 (He et al. 2016), MedMNIST stem below 64 px",
        reference="https://arxiv.org/abs/1512.03385",
    ),
)
def resnet18(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """ResNet-18 backbone."""
    return _resnet(tvm.resnet18, in_channels, num_classes, size)


@MODELS.register(
    "resnet50",
    meta=ModelMeta(
        family="resnet",
        description="ResNet-50 (He et al. 2016), MedMNIST stem below 64 px",
        reference="https://arxiv.org/abs/1512.03385",
    ),
)
def resnet50(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """ResNet-50 backbone."""
    return _resnet(tvm.resnet50, in_channels, num_classes, size)


@MODELS.register(
    "mobilenet_v2",
    meta=ModelMeta(
        family="mobilenet",
        description="MobileNetV2 (Sandler et al. 2018), stride-1 stem below 64 px",
        reference="https://arxiv.org/abs/1801.04381",
    ),
)
def mobilenet_v2(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """MobileNetV2 backbone."""
    net = tvm.mobilenet_v2(weights=None, num_classes=num_classes)
    first = net.features[0][0]
    stride = 1 if size < SMALL_INPUT else 2
    if stride != 2 or in_channels != 3:
        net.features[0][0] = _conv_like(first, in_channels, kernel=3, stride=stride, padding=1)
    return net


@MODELS.register(
    "vgg16_bn",
    meta=ModelMeta(
        family="vgg",
        description="VGG-16 with batch norm (Simonyan & Zisserman 2015), GAP + linear head",
        reference="https://arxiv.org/abs/1409.1556",
    ),
)
def vgg16_bn(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """VGG-16-BN backbone with a global-average-pool head."""
    net = tvm.vgg16_bn(weights=None)
    layers = list(net.features)
    if in_channels != 3:
        layers[0] = _conv_like(layers[0], in_channels, kernel=3, stride=1, padding=1)
    if size < SMALL_INPUT:
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        for i in pools[3:]:  # 28 -> 14 -> 7 -> 3, then keep the resolution
            layers[i] = nn.Identity()
    net.features = nn.Sequential(*layers)
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(512, num_classes))
    return net


@MODELS.register(
    "densenet121",
    meta=ModelMeta(
        family="densenet",
        description="DenseNet-121 (Huang et al. 2017), MedMNIST stem below 64 px",
        reference="https://arxiv.org/abs/1608.06993",
    ),
)
def densenet121(in_channels: int, num_classes: int, size: int) -> nn.Module:
    """DenseNet-121 backbone."""
    net = tvm.densenet121(weights=None, num_classes=num_classes)
    conv0 = net.features.conv0
    if size < SMALL_INPUT:
        net.features.conv0 = _conv_like(conv0, in_channels, kernel=3, stride=1, padding=1)
        net.features.pool0 = nn.Identity()
    elif in_channels != 3:
        net.features.conv0 = _conv_like(conv0, in_channels, kernel=7, stride=2, padding=3)
    return net
