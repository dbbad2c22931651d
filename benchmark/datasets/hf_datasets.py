"""Generic loader for local clinical image sets (and hub datasets) on Hugging Face ``datasets``.

A :class:`HFImageSource` declares where the images are and how to read them:

* ``builder="csv"``: a CSV file with an image-path column (relative to the CSV's folder), a
  label column and optionally a split column (``ham10000_220`` is registered this way);
* ``builder="imagefolder"``: ``<folder>/<split>/<class>/<image>`` (or a single split);
* ``builder="parquet"``: parquet files with an image column (bytes or path) and a label column;
* ``builder="hub"``: a Hugging Face hub id (needs the network; not used in tests).

Local sources live in ``<data_dir>/<folder>`` where the data dir comes from ``--data-dir`` or
``$BENCH_DATA_DIR``. Images are decoded with the ``datasets.Image`` feature, converted to the
dataset's channel count, and resized (antialiased) to the requested size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.datasets.base import DATASETS, DatasetMeta, ImageSplit
from benchmark.errors import ConfigError, DataError
from benchmark.hashing import files_digest

logger = logging.getLogger(__name__)

_BUILDERS = ("csv", "imagefolder", "parquet", "hub")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class HFImageSource:
    """A dataset read with Hugging Face ``datasets``.

    Attributes:
        meta: the dataset's metadata.
        builder: "csv", "imagefolder", "parquet" or "hub".
        location: folder name under the data dir (local builders) or hub id ("hub").
        data_files: the CSV file (csv) or a mapping split -> glob (parquet), relative to the
            folder.
        image_column: column holding the image path (csv) or image (parquet / hub).
        label_column: column holding the integer label.
        split_column: column naming each row's split (csv); None when splits are separate.
        split_map: our split name -> value in ``split_column`` or the source's split name.
        native_size: side of the stored images (resizing is skipped at this size).
    """

    meta: DatasetMeta
    builder: str
    location: str
    data_files: Any = None
    image_column: str = "image"
    label_column: str = "label"
    split_column: str | None = None
    split_map: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "val": "validation", "test": "test"}
    )
    native_size: int | None = None

    def __post_init__(self) -> None:
        if self.builder not in _BUILDERS:
            raise ConfigError(f"unknown builder '{self.builder}'; use one of {_BUILDERS}")

    def folder(self, data_dir: Path | None) -> Path:
        """The local folder of the dataset, checked to exist."""
        if data_dir is None:
            raise DataError(
                f"dataset '{self.meta.name}' is read from local files: set --data-dir or "
                f"BENCH_DATA_DIR to the folder that holds '{self.location}/'"
            )
        root = data_dir / self.location
        if not root.is_dir():
            raise DataError(
                f"dataset folder {root} not found; set --data-dir or BENCH_DATA_DIR to the folder "
                f"that holds '{self.location}/'"
            )
        return root

    # -- reading ------------------------------------------------------------------------------
    def _hf_split(self, split: str, data_dir: Path | None) -> Any:
        import datasets

        datasets.disable_progress_bars()
        if split not in self.split_map:
            raise DataError(f"dataset '{self.meta.name}' has no '{split}' split")
        target = self.split_map[split]
        try:
            if self.builder == "hub":
                ds = datasets.load_dataset(self.location, split=target)
                return ds.cast_column(self.image_column, datasets.Image())
            root = self.folder(data_dir)
            if self.builder == "csv":
                ds = datasets.load_dataset(
                    "csv",
                    data_files=str(root / self.data_files),
                    split="train",
                    keep_in_memory=True,
                )
                if self.split_column is not None:
                    ds = ds.filter(
                        lambda v: v == target,
                        input_columns=self.split_column,
                        keep_in_memory=True,
                    )
                ds = ds.map(
                    lambda p: {"__image__": str(root / p)},
                    input_columns=self.image_column,
                    keep_in_memory=True,
                )
                return ds.cast_column("__image__", datasets.Image())
            if self.builder == "imagefolder":
                dd = datasets.load_dataset("imagefolder", data_dir=str(root), keep_in_memory=True)
                if target not in dd:
                    raise DataError(
                        f"{root} has no '{target}' split (found {', '.join(dd)}); put images in "
                        f"{root}/{target}/<class>/"
                    )
                return dd[target]
            files = self.data_files or {}
            ds = datasets.load_dataset(
                "parquet",
                data_files={target: str(root / files[split])},
                split=target,
                keep_in_memory=True,
            )
            return ds.cast_column(self.image_column, datasets.Image())
        except DataError:
            raise
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise DataError(f"cannot read dataset '{self.meta.name}': {exc}") from exc

    def _image_key(self) -> str:
        if self.builder == "csv":
            return "__image__"
        return "image" if self.builder == "imagefolder" else self.image_column

    def load(
        self,
        split: str,
        *,
        size: int | None = None,
        data_dir: Path | None = None,
        download: bool = False,
    ) -> ImageSplit:
        """Load ``split`` resized to ``size`` px as an :class:`ImageSplit` (``download`` unused:
        local sources are never downloaded; hub sources fetch through ``datasets``)."""
        size = size or self.meta.default_size
        ds = self._hf_split(split, data_dir)
        mode = "L" if self.meta.n_channels == 1 else "RGB"
        key = self._image_key()
        arrays = []
        for img in ds[key]:
            arr = np.asarray(img.convert(mode), dtype=np.uint8)
            arrays.append(arr[:, :, None] if arr.ndim == 2 else arr)
        labels = np.asarray(ds[self.label_column], dtype=np.int64)
        if not arrays:
            raise DataError(f"dataset '{self.meta.name}' split '{split}' is empty")
        images = torch.stack(
            [_resize(torch.from_numpy(a.transpose(2, 0, 1).copy()), size) for a in arrays]
        )
        if labels.min() < 0 or labels.max() >= self.meta.num_classes:
            raise DataError(
                f"dataset '{self.meta.name}' has labels outside 0..{self.meta.num_classes - 1}"
            )
        location = self.location if self.builder == "hub" else str(self.folder(data_dir))
        return ImageSplit(
            images=images,
            labels=torch.from_numpy(labels),
            meta=self.meta,
            split=split,
            size=size,
            sha256=self.sha256(data_dir),
            source_path=location,
        )

    def sha256(self, data_dir: Path | None) -> str:
        """Digest of every file of a local dataset (images and tables); hub sources: ''."""
        if self.builder == "hub":
            return ""
        root = self.folder(data_dir)
        files = [
            p
            for p in root.rglob("*")
            if p.is_file()
            and (p.suffix.lower() in _IMAGE_SUFFIXES or p.suffix in {".csv", ".parquet"})
        ]
        return files_digest(files, root)


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 CHW image to ``size`` x ``size``."""
    if image.shape[-1] == size and image.shape[-2] == size:
        return image
    out = F.interpolate(
        image[None].float(),
        size=(size, size),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0]
    return out.round().clamp(0, 255).to(torch.uint8)


HAM10000_CLASSES = (
    "actinic keratoses and intraepithelial carcinoma",
    "basal cell carcinoma",
    "benign keratosis-like lesions",
    "dermatofibroma",
    "melanoma",
    "melanocytic nevi",
    "vascular lesions",
)

DATASETS.register(
    "ham10000_220",
    HFImageSource(
        meta=DatasetMeta(
            name="ham10000_220",
            task="multi-class",
            n_channels=3,
            class_names=HAM10000_CLASSES,
            split_sizes=(("train", 469), ("val", 67), ("test", 135)),
            sizes=(28, 64, 128, 220),
            default_size=64,
            license="CC BY-NC 4.0",
            source="HAM10000 (Tschandl et al. 2018), 671-image 220x220 subset with a "
            "lesion-disjoint split; see data_cards/ham10000_220.md",
            citation="Tschandl, P., Rosendahl, C. & Kittler, H. The HAM10000 dataset, a large "
            "collection of multi-source dermatoscopic images of common pigmented skin lesions. "
            "Sci. Data 5, 180161 (2018).",
            modality="dermatoscopy",
            description="HAM10000 dermoscopy subset at 220 px (671 images, 7 classes, "
            "lesion-disjoint split)",
            loader="hf_datasets",
        ),
        builder="csv",
        location="ham10000_220",
        data_files="labels.csv",
        image_column="file",
        label_column="label",
        split_column="split",
        split_map={"train": "train", "val": "val", "test": "test"},
        native_size=220,
    ),
)
