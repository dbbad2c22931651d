"""Every registered dataset has a data card that agrees with its loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from benchmark.datasets import DATASETS, SPLITS, load_split

CARDS = Path(__file__).resolve().parents[2] / "data_cards"
REQUIRED = {
    "name",
    "title",
    "source",
    "citation",
    "license",
    "modality",
    "task",
    "n_channels",
    "classes",
    "split_sizes",
    "image_size",
    "sizes",
}
#: Datasets whose real files are in ../shared/data (the loader is checked against the card).
LOCAL = {"pneumoniamnist": 28, "breastmnist": 28, "retinamnist": 28, "ham10000_220": 64}


def front_matter(path: Path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n"), f"{path.name} has no YAML front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.mark.parametrize("name", DATASETS.list())
def test_card_exists_and_matches_metadata(name):
    path = CARDS / f"{name}.md"
    assert path.is_file(), f"missing data card {path}"
    card = front_matter(path)
    assert set(card) >= REQUIRED, f"{path.name} lacks {REQUIRED - set(card)}"
    meta = DATASETS.get(name).meta
    assert card["name"] == name
    assert card["license"] in ("CC BY 4.0", "CC BY-NC 4.0")
    assert card["license"] == meta.license
    assert card["task"] == meta.task and card["modality"] == meta.modality
    assert card["n_channels"] == meta.n_channels
    assert card["classes"] == list(meta.class_names)
    assert card["split_sizes"] == dict(meta.split_sizes)
    assert card["image_size"] == meta.default_size and card["sizes"] == list(meta.sizes)
    for section in ("## Preprocessing", "## Class balance", "## Known caveats", "## Intended use"):
        assert section in path.read_text(), f"{path.name} lacks section {section}"


def test_no_card_without_a_dataset():
    names = {p.stem for p in CARDS.glob("*.md")}
    assert names == set(DATASETS.list())


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_card_agrees_with_loader_on_real_files(name, shared_data):
    card = front_matter(CARDS / f"{name}.md")
    for split in SPLITS:
        ds = load_split(name, split, size=LOCAL[name], data_dir=shared_data)
        assert len(ds) == card["split_sizes"][split]
        assert ds.images.shape[1] == card["n_channels"]
        counts = torch.bincount(ds.labels, minlength=len(card["classes"]))
        assert len(counts) == len(card["classes"]), "labels beyond the card's classes"
        if split == "train":
            assert bool((counts > 0).all()), "a class of the card never occurs in train"
