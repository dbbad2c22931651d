"""Dataset interface: metadata, the in-memory split, and the ``DATASETS`` registry.

Tensor contract: every sample is float32 CHW in [0, 1]; labels are int64 class ids for
single-label tasks and float {0, 1} vectors of length L for multi-label tasks. Images are kept
as uint8 NCHW in memory and converted per batch, which keeps a whole MedMNIST split small.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset

from benchmark.registry import Registry

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TASKS = ("binary-class", "multi-class", "multi-label", "ordinal-regression")


@dataclass(frozen=True)
class DatasetMeta:
    """Static description of a registered dataset (mirrors its data card's front matter).

    Attributes:
        name: registry id.
        task: one of ``TASKS``; ordinal regression is evaluated as multi-class (as MedMNIST does).
        n_channels: 1 (grey) or 3 (RGB).
        class_names: one name per class (or per label for multi-label tasks).
        split_sizes: ``(("train", n), ("val", n), ("test", n))`` of the official split.
        sizes: image sizes (px) the dataset is available at; ``default_size`` is used if unset.
        license: SPDX-like licence string (``CC BY 4.0`` or ``CC BY-NC 4.0``).
        source: where the data comes from (URL or description).
        citation: how to cite it.
        modality: imaging modality ("chest x-ray", "dermoscopy", ...).
        description: one-line description, shown by ``bench list datasets``.
    """

    name: str
    task: str
    n_channels: int
    class_names: tuple[str, ...]
    split_sizes: tuple[tuple[str, int], ...]
    sizes: tuple[int, ...]
    default_size: int
    license: str
    source: str
    citation: str
    modality: str
    description: str = ""
    loader: str = "medmnist"

    @property
    def num_classes(self) -> int:
        """Number of classes (single-label) or labels (multi-label)."""
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        """True when each sample carries a 0/1 vector of labels."""
        return self.task == "multi-label"

    def split_size(self, split: str) -> int:
        """Official number of samples in ``split``."""
        return dict(self.split_sizes)[split]


@dataclass
class ImageSplit(Dataset):
    """One split of a dataset, held in memory.

    Attributes:
        images: uint8 tensor (N, C, H, W).
        labels: int64 (N,) or float32 (N, L) for multi-label tasks.
        meta: the dataset's metadata.
        split: "train", "val" or "test".
        size: image side in pixels.
        sha256: checksum of the data file(s) the split was read from (provenance).
        source_path: the file or folder read.
    """

    images: Tensor
    labels: Tensor
    meta: DatasetMeta
    split: str
    size: int
    sha256: str
    source_path: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError("ImageSplit.images must be a uint8 NCHW tensor")
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError("ImageSplit images and labels differ in length")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_float(self.images[index]), self.labels[index]

    def subset(self, indices: Tensor) -> ImageSplit:
        """The samples at ``indices`` (same metadata and checksum; indices kept in ``extra``)."""
        extra = dict(self.extra)
        extra["indices"] = indices.tolist()
        return ImageSplit(
            images=self.images[indices],
            labels=self.labels[indices],
            meta=self.meta,
            split=self.split,
            size=self.size,
            sha256=self.sha256,
            source_path=self.source_path,
            extra=extra,
        )

    def batches(
        self, batch_size: int, order: Tensor | None = None, device: torch.device | str = "cpu"
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` batches (x float32 NCHW in [0, 1]) of the samples in ``order``.

        ``order`` (default: all samples as stored) may be a permutation or any index subset.
        """
        idx = order if order is not None else torch.arange(len(self))
        for start in range(0, len(idx), batch_size):
            sel = idx[start : start + batch_size]
            yield to_float(self.images[sel]).to(device), self.labels[sel].to(device)


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1] (the benchmark's tensor contract)."""
    return images.to(torch.float32).div_(255.0)


class DatasetSource(Protocol):
    """What the ``DATASETS`` registry holds: an object with ``meta`` that loads splits."""

    meta: DatasetMeta

    def load(
        self,
        split: str,
        *,
        size: int | None = None,
        data_dir: Path | None = None,
        download: bool = False,
    ) -> ImageSplit:
        """Load ``split`` at ``size`` px from ``data_dir``; download only if asked."""
        ...


DATASETS: Registry[DatasetSource] = Registry("dataset", meta_type=DatasetMeta)


def resolve_size(name: str, size: int | None = None) -> int:
    """The image size a run of dataset ``name`` uses: ``size``, else the dataset's default."""
    return size or DATASETS.get(name).meta.default_size


def load_split(
    name: str,
    split: str,
    *,
    size: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
) -> ImageSplit:
    """Load one split of a registered dataset (the main entry point for data).

    Args:
        name: registered dataset id (``bench list datasets``).
        split: "train", "val" or "test".
        size: image size; defaults to the dataset's ``default_size``.
        data_dir: data root; defaults to ``$BENCH_DATA_DIR`` then the loader's own default.
        download: allow the loader to download a missing file (MedMNIST only).
    """
    from benchmark import paths
    from benchmark.errors import ConfigError

    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    source = DATASETS.get(name)
    size = resolve_size(name, size)
    if size not in source.meta.sizes:
        raise ConfigError(
            f"dataset '{name}' has no size {size}; available sizes: "
            f"{', '.join(map(str, source.meta.sizes))}"
        )
    return source.load(split, size=size, data_dir=paths.data_dir(data_dir), download=download)
