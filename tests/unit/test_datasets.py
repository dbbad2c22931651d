"""Dataset loaders on the real files in ../shared/data, and their error paths."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark.datasets import DATASETS, SPLITS, load_split
from benchmark.datasets.hf_datasets import HFImageSource
from benchmark.errors import ConfigError, DataError
from benchmark.testing.fakes import write_fake_medmnist

LOCAL_MEDMNIST = ["pneumoniamnist", "breastmnist", "retinamnist"]
MEDMNIST_2D = [
    "bloodmnist",
    "breastmnist",
    "chestmnist",
    "dermamnist",
    "octmnist",
    "organamnist",
    "organcmnist",
    "organsmnist",
    "pathmnist",
    "pneumoniamnist",
    "retinamnist",
    "tissuemnist",
]


def test_every_2d_medmnist_dataset_is_registered_with_info_metadata():
    from medmnist import INFO

    assert set(MEDMNIST_2D) <= set(DATASETS.list())
    for flag in MEDMNIST_2D:
        meta = DATASETS.get(flag).meta
        info = INFO[flag]
        assert meta.sizes == (28, 64, 128, 224)
        assert meta.n_channels == info["n_channels"]
        assert meta.num_classes == len(info["label"])
        assert dict(meta.split_sizes) == info["n_samples"]
        assert meta.license in ("CC BY 4.0", "CC BY-NC 4.0")
    chest = DATASETS.get("chestmnist").meta
    assert chest.multi_label and chest.num_classes == 14


@pytest.mark.parametrize("flag", LOCAL_MEDMNIST)
def test_real_medmnist_splits_load_with_contract(flag, shared_data, shared_sha256):
    meta = DATASETS.get(flag).meta
    raw = np.load(shared_data / "medmnist" / f"{flag}.npz")
    for split in SPLITS:
        ds = load_split(flag, split, data_dir=shared_data)
        assert len(ds) == meta.split_size(split)
        assert ds.images.dtype == torch.uint8
        assert ds.images.shape[1:] == (meta.n_channels, 28, 28)
        assert ds.labels.dtype == torch.int64
        assert set(ds.labels.unique().tolist()) == set(range(meta.num_classes))
        x, y = ds[0]
        assert x.dtype == torch.float32 and x.shape == (meta.n_channels, 28, 28)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        # Same pixels and labels as the official arrays.
        img = raw[f"{split}_images"][0]
        img = img[None] if img.ndim == 2 else img.transpose(2, 0, 1)
        assert torch.equal(ds.images[0], torch.from_numpy(img))
        assert int(y) == int(raw[f"{split}_labels"][0, 0])
        assert ds.sha256 == shared_sha256[f"medmnist/{flag}.npz"]


def test_data_dir_from_environment_variable(shared_data, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(shared_data))
    assert len(load_split("breastmnist", "test")) == 156


def test_data_dir_may_be_the_npz_folder_itself(shared_data):
    assert len(load_split("breastmnist", "val", data_dir=shared_data / "medmnist")) == 78


def test_missing_file_names_file_checksum_and_fix(tmp_path):
    with pytest.raises(DataError) as err:
        load_split("breastmnist", "test", data_dir=tmp_path)
    msg = str(err.value)
    assert "breastmnist.npz not found" in msg and "750601b1f35ba3300ea97c75c52ff8f6" in msg
    assert "--download" in msg and "\n" not in msg


def test_corrupt_file_is_refused_by_md5(tmp_path, shared_data):
    target = tmp_path / "breastmnist.npz"
    shutil.copy(shared_data / "medmnist" / "breastmnist.npz", target)
    with open(target, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DataError, match=r"md5 .* but medmnist expects 750601b1"):
        load_split("breastmnist", "test", data_dir=tmp_path)


def test_download_only_when_asked_and_failure_is_one_line(tmp_path):
    # Sockets are blocked in tests: asking for a download must try and fail cleanly.
    with pytest.raises(DataError) as err:
        load_split("breastmnist", "test", data_dir=tmp_path / "new", download=True)
    assert "download of breastmnist.npz failed" in str(err.value)
    assert "\n" not in str(err.value)


def test_fake_npz_in_official_layout_loads_without_md5(tmp_path):
    write_fake_medmnist(tmp_path, "chestmnist", n={"train": 6, "val": 3, "test": 5})
    source = DATASETS.get("chestmnist")
    ds = source.load("test", data_dir=tmp_path, verify=False)
    assert ds.images.shape == (5, 1, 28, 28)
    assert ds.labels.dtype == torch.float32 and ds.labels.shape == (5, 14)
    assert set(ds.labels.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(DataError, match="md5"):
        source.load("test", data_dir=tmp_path)


def test_bad_split_and_size_are_config_errors(shared_data):
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        load_split("breastmnist", "dev", data_dir=shared_data)
    with pytest.raises(ConfigError, match="no size 32"):
        load_split("breastmnist", "test", size=32, data_dir=shared_data)


def test_ham10000_lesion_split_and_labels(shared_data, shared_sha256):
    table = pd.read_csv(shared_data / "ham10000_220" / "labels.csv")
    meta = DATASETS.get("ham10000_220").meta
    for split in SPLITS:
        ds = load_split("ham10000_220", split, size=220, data_dir=shared_data)
        rows = table[table["split"] == split]
        assert len(ds) == len(rows) == meta.split_size(split)
        assert ds.images.shape[1:] == (3, 220, 220)
        assert ds.labels.tolist() == rows["label"].tolist()
    first = table[table["split"] == "test"].iloc[0]
    native = np.asarray(Image.open(shared_data / "ham10000_220" / first["file"]).convert("RGB"))
    assert torch.equal(ds.images[0], torch.from_numpy(native.transpose(2, 0, 1).copy()))
    lesions = [set(table[table["split"] == s]["lesion_id"]) for s in SPLITS]
    assert not (lesions[0] & lesions[1] or lesions[0] & lesions[2] or lesions[1] & lesions[2])
    assert len(ds.sha256) == 64


def test_ham10000_resizes_to_requested_size(shared_data):
    ds = load_split("ham10000_220", "val", size=64, data_dir=shared_data)
    assert ds.images.shape == (67, 3, 64, 64)
    x, _ = ds[3]
    assert x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1


def test_ham10000_without_data_dir_is_a_clear_error():
    with pytest.raises(DataError, match="BENCH_DATA_DIR"):
        load_split("ham10000_220", "test")


def test_generic_loader_imagefolder_on_real_dermamnist_samples(shared_data):
    meta = DATASETS.get("dermamnist").meta
    source = HFImageSource(
        meta=meta,
        builder="imagefolder",
        location="dermamnist_samples",
        split_map={"train": "train"},
    )
    ds = source.load("train", size=28, data_dir=shared_data)
    assert ds.images.shape == (35, 3, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [5] * 7
    table = pd.read_csv(shared_data / "dermamnist_samples" / "labels.csv")
    assert sorted(ds.labels.tolist()) == sorted(table["label"].tolist())
    with pytest.raises(DataError, match="no 'test' split"):
        source.load("test", data_dir=shared_data)


def test_generic_loader_parquet(shared_data, tmp_path):
    table = pd.read_csv(shared_data / "ham10000_220" / "labels.csv").head(12)
    rows = []
    for _, r in table.iterrows():
        data = (shared_data / "ham10000_220" / r["file"]).read_bytes()
        rows.append(
            {"image": {"bytes": data, "path": None}, "label": int(r["label"]), "split": "test"}
        )
    folder = tmp_path / "hamparquet"
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "test.parquet")
    meta = DATASETS.get("ham10000_220").meta
    source = HFImageSource(
        meta=meta,
        builder="parquet",
        location="hamparquet",
        data_files={"test": "test.parquet"},
        split_map={"test": "test"},
    )
    ds = source.load("test", size=32, data_dir=tmp_path)
    assert ds.images.shape == (12, 3, 32, 32)
    assert ds.labels.tolist() == table["label"].tolist()
