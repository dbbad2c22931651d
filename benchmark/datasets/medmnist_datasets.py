"""Every 2D MedMNIST dataset, loaded through the official ``medmnist`` classes.

Files are looked up as ``<root>/<flag>[_<size>].npz`` where ``<root>`` is

* ``<data_dir>/medmnist`` if that folder exists, else ``<data_dir>`` itself, when a data dir is
  given (``--data-dir`` or ``$BENCH_DATA_DIR``);
* medmnist's own default (``~/.medmnist``) otherwise.

Before use the file's MD5 is checked against ``medmnist.INFO``; a missing or mismatching file is
a :class:`~benchmark.errors.DataError` naming the file, the expected checksum and how to obtain
it. Downloads happen only with ``download=True`` and only when the file is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.datasets.base import DATASETS, DatasetMeta, ImageSplit
from benchmark.errors import DataError
from benchmark.hashing import file_digest

logger = logging.getLogger(__name__)

MEDMNIST_SIZES = (28, 64, 128, 224)
MEDMNIST_CITATION = (
    "Yang, J. et al. MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical "
    "image classification. Scientific Data 10, 41 (2023)."
)

#: The 2D MedMNIST datasets and their imaging modality (the 3D sets are out of scope).
MEDMNIST_2D: dict[str, str] = {
    "pathmnist": "colon pathology",
    "chestmnist": "chest x-ray",
    "dermamnist": "dermatoscopy",
    "octmnist": "retinal oct",
    "pneumoniamnist": "chest x-ray",
    "retinamnist": "fundus camera",
    "breastmnist": "breast ultrasound",
    "bloodmnist": "blood cell microscopy",
    "tissuemnist": "kidney cortex microscopy",
    "organamnist": "abdominal ct",
    "organcmnist": "abdominal ct",
    "organsmnist": "abdominal ct",
}

_TASKS = {
    "binary-class": "binary-class",
    "multi-class": "multi-class",
    "ordinal-regression": "ordinal-regression",
    "multi-label, binary-class": "multi-label",
}


def _info(flag: str) -> dict:
    from medmnist import INFO

    return INFO[flag]


def medmnist_root(data_dir: Path | None) -> Path:
    """The folder holding the MedMNIST ``.npz`` files for a given data root."""
    if data_dir is None:
        from medmnist.info import DEFAULT_ROOT

        return Path(DEFAULT_ROOT)
    sub = data_dir / "medmnist"
    return sub if sub.is_dir() else data_dir


@dataclass
class MedMNISTSource:
    """Loads one MedMNIST 2D dataset (``flag``) through its ``medmnist`` class."""

    flag: str
    meta: DatasetMeta

    def filename(self, size: int) -> str:
        """The official file name at ``size`` px (``pneumoniamnist_64.npz``)."""
        return f"{self.flag}{'' if size == 28 else f'_{size}'}.npz"

    def expected_md5(self, size: int) -> str:
        """The MD5 that ``medmnist.INFO`` lists for the file at ``size`` px."""
        return _info(self.flag)["MD5" if size == 28 else f"MD5_{size}"]

    def url(self, size: int) -> str:
        """The official download URL (Zenodo) of the file at ``size`` px."""
        return _info(self.flag)["url" if size == 28 else f"url_{size}"]

    def locate(self, size: int, data_dir: Path | None, download: bool = False) -> Path:
        """Return the verified path of the file, downloading it first only if asked.

        Raises:
            DataError: the file is missing (and ``download`` is False or fails) or its MD5 does
                not match ``medmnist.INFO``.
        """
        root = medmnist_root(data_dir)
        path = root / self.filename(size)
        md5 = self.expected_md5(size)
        if not path.is_file():
            if not download:
                raise DataError(
                    f"{path.name} not found in {root} (expected md5 {md5}); pass --download to "
                    f"fetch it from {self.url(size)}, or set --data-dir/BENCH_DATA_DIR to a "
                    "folder that holds it"
                )
            self._download(root, size)
        actual = file_digest(path, "md5")
        if actual != md5:
            raise DataError(
                f"{path} has md5 {actual} but medmnist expects {md5}: the file is corrupt or "
                f"not the official release; replace it with the file from {self.url(size)}"
            )
        return path

    def _download(self, root: Path, size: int) -> None:
        import medmnist

        root.mkdir(parents=True, exist_ok=True)
        cls = getattr(medmnist, _info(self.flag)["python_class"])
        logger.info("downloading %s into %s", self.filename(size), root)
        try:
            cls(split="test", root=str(root), download=True, size=size)
        except Exception as exc:
            raise DataError(
                f"download of {self.filename(size)} failed ({str(exc).strip().splitlines()[0]}); "
                f"fetch {self.url(size)} by hand and put it in {root}"
            ) from exc

    def load(
        self,
        split: str,
        *,
        size: int | None = None,
        data_dir: Path | None = None,
        download: bool = False,
        verify: bool = True,
    ) -> ImageSplit:
        """Load ``split`` at ``size`` px as an :class:`ImageSplit`.

        Args:
            verify: check the file's MD5 against ``medmnist.INFO`` (tests that build small fake
                files in the official layout turn this off).
        """
        import medmnist

        size = size or self.meta.default_size
        if verify:
            path = self.locate(size, data_dir, download)
        else:
            path = medmnist_root(data_dir) / self.filename(size)
        cls = getattr(medmnist, _info(self.flag)["python_class"])
        try:
            # The medmnist class does the reading; its `len()` asserts the official count, so
            # the arrays are taken directly (fake fixtures are smaller than the official split).
            ds = cls(split=split, root=str(path.parent), download=False, size=size)
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            raise DataError(f"cannot read {path}: {exc}; re-download it with --download") from exc
        images = np.asarray(ds.imgs)
        labels = np.asarray(ds.labels)
        if images.ndim == 3:
            images = images[:, :, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        if self.meta.multi_label:
            y = torch.from_numpy(labels.astype(np.float32))
        else:
            y = torch.from_numpy(labels.reshape(-1).astype(np.int64))
        return ImageSplit(
            images=tensor,
            labels=y,
            meta=self.meta,
            split=split,
            size=size,
            sha256=file_digest(path),
            source_path=str(path),
        )


def _register_all() -> None:
    for flag, modality in MEDMNIST_2D.items():
        info = _info(flag)
        labels = info["label"]
        meta = DatasetMeta(
            name=flag,
            task=_TASKS[info["task"]],
            n_channels=int(info["n_channels"]),
            class_names=tuple(labels[str(i)] for i in range(len(labels))),
            split_sizes=tuple((s, int(info["n_samples"][s])) for s in ("train", "val", "test")),
            sizes=MEDMNIST_SIZES,
            default_size=28,
            license=info["license"],
            source=f"MedMNIST v2 ({info['python_class']}), https://medmnist.com/",
            citation=MEDMNIST_CITATION,
            modality=modality,
            description=f"MedMNIST {info['python_class']}: {modality}, {info['task']}, "
            f"{len(labels)} classes",
            loader="medmnist",
        )
        DATASETS.register(flag, MedMNISTSource(flag=flag, meta=meta))


_register_all()
