"""Datasets: the ``DATASETS`` registry and its loaders (MedMNIST 2D, Hugging Face folders)."""

from benchmark.datasets import hf_datasets, medmnist_datasets  # noqa: F401  (registers entries)
from benchmark.datasets.base import (
    DATASETS,
    SPLITS,
    DatasetMeta,
    ImageSplit,
    load_split,
    to_float,
)

__all__ = ["DATASETS", "SPLITS", "DatasetMeta", "ImageSplit", "load_split", "to_float"]
