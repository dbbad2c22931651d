"""Architectures adapt to size, channels and classes; normalisation lives in the wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.errors import ConfigError, UnknownNameError
from benchmark.models import MODELS, ImageClassifier, build_model

ARCHS = ["resnet18", "resnet50", "mobilenet_v2", "vgg16_bn", "densenet121", "tiny_cnn"]


def test_required_architectures_are_registered():
    assert set(ARCHS) <= set(MODELS.list())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("size", "channels", "classes"), [(28, 1, 2), (28, 3, 7), (64, 1, 14)])
def test_build_adapts_to_input_and_classes(arch, size, channels, classes):
    torch.manual_seed(0)
    model = build_model(arch, in_channels=channels, num_classes=classes, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


def test_medmnist_stem_below_64_px_and_standard_stem_above():
    small = build_model("resnet18", in_channels=1, num_classes=2, image_size=28).backbone
    assert small.conv1.stride == (1, 1) and small.conv1.kernel_size == (3, 3)
    assert small.conv1.in_channels == 1 and isinstance(small.maxpool, nn.Identity)
    large = build_model("resnet18", in_channels=3, num_classes=2, image_size=128).backbone
    assert large.conv1.stride == (2, 2) and large.conv1.kernel_size == (7, 7)
    assert isinstance(large.maxpool, nn.MaxPool2d)
    dense = build_model("densenet121", in_channels=1, num_classes=2, image_size=28).backbone
    assert dense.features.conv0.stride == (1, 1)


def test_normalisation_is_inside_the_wrapper():
    backbone = nn.Identity()
    model = ImageClassifier(
        backbone,
        arch="identity",
        in_channels=3,
        num_classes=3,
        image_size=4,
        mean=[0.1, 0.2, 0.3],
        std=[0.5, 0.25, 0.1],
    )
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 0.1]
    ).view(1, 3, 1, 1)
    assert torch.allclose(model(x), expected)
    default = build_model("tiny_cnn", in_channels=1, num_classes=2, image_size=28)
    assert default.mean.flatten().tolist() == [0.5] and default.std.flatten().tolist() == [0.5]


def test_multilabel_probabilities_are_sigmoid():
    model = build_model(
        "tiny_cnn", in_channels=1, num_classes=14, image_size=28, multi_label=True
    ).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model.predict_proba(x), torch.sigmoid(model(x)))


def test_bad_arch_and_size_are_refused():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet18'"):
        build_model("resnet19", in_channels=1, num_classes=2, image_size=28)
    with pytest.raises(ConfigError, match="at least 28 px"):
        build_model("resnet18", in_channels=1, num_classes=2, image_size=16)


@pytest.mark.parametrize("channels", [1, 3])
def test_scoring_runs_channels_last_and_restores_the_layout(channels, monkeypatch):
    from benchmark.models import inference

    torch.manual_seed(0)
    model = build_model("resnet18", in_channels=channels, num_classes=5, image_size=28).eval()
    x = torch.rand(6, channels, 28, 28)
    seen = []
    conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]  # in_channels > 1
    conv.register_forward_pre_hook(
        lambda m, _: seen.append(m.weight.is_contiguous(memory_format=torch.channels_last))
    )
    ptrs = [p.data_ptr() for p in model.parameters() if p.ndim == 4]
    fast = inference.probabilities(model, [x[:4], x[4:]])
    assert seen and all(seen)
    # The layout is restored and the weights still serve autograd (attacks run after scoring).
    weights = [p for p in model.parameters() if p.ndim == 4]
    assert all(p.is_contiguous() for p in weights)
    assert [p.data_ptr() for p in weights] == ptrs  # the original tensors, not copies
    xg = x.clone().requires_grad_(True)
    model(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    monkeypatch.setattr(inference, "SCORING_CHANNELS_LAST", False)
    seen.clear()
    plain = inference.probabilities(model, [x[:4], x[4:]])
    assert seen and not any(seen)
    assert abs(fast - plain).max() < 1e-5
    assert (fast.argmax(1) == plain.argmax(1)).all()


def test_scoring_leaves_a_channels_last_model_as_it_is():
    from benchmark.models import inference

    model = build_model("resnet18", in_channels=1, num_classes=2, image_size=28).eval()
    model = model.to(memory_format=torch.channels_last)  # as the trainer holds it
    before = {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()}
    inference.probabilities(model, [torch.rand(3, 1, 28, 28)])
    assert {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()} == before
