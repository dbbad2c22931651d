"""The evaluation runner: resolve the model, score it, write one versioned results file.

This first slice evaluates the clean (no attack) threat model: accuracy, AUC, per-class
accuracy and the confusion matrix, each scalar with ``n`` and a 95% CI. Attacks and defenses
add cells to the same result document in later versions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import benchmark
from benchmark import paths
from benchmark.datasets.base import DATASETS, load_split
from benchmark.device import pick_device, seed_everything
from benchmark.errors import CheckpointError, ConfigError
from benchmark.metrics.classification import compute_clean_metrics
from benchmark.models.base import MODELS
from benchmark.models.inference import predict
from benchmark.models.zoo import ModelZoo, model_id
from benchmark.results.provenance import environment, git_commit, package_versions, utc_now
from benchmark.results.schema import SCHEMA_VERSION, write_result
from benchmark.training.trainer import TrainConfig, train_model

logger = logging.getLogger(__name__)


@dataclass
class EvaluationConfig:
    """What to evaluate (recorded, fully resolved, in the result's ``config``).

    Attributes:
        dataset: registered dataset id.
        arch: registered model id.
        size: image size (default: the dataset's default).
        split: the split scored (``test`` for reported numbers).
        seed: seed of the model to load and of the bootstrap CIs.
        batch_size: inference batch size.
        device: "auto", "cpu" or "cuda[:N]".
        defense: defense id (none in this version).
        threat_model: "clean" in this version.
    """

    dataset: str
    arch: str
    size: int | None = None
    split: str = "test"
    seed: int = 0
    batch_size: int = 512
    device: str = "auto"
    defense: str | None = None
    threat_model: str = "clean"


def result_path(out_dir: Path, doc: dict[str, Any]) -> Path:
    """Where a result goes: ``<out>/<dataset>/<threat_model>/<model_id>/<run_id>.json``."""
    cfg = doc["config"]
    folder = out_dir / cfg["dataset"] / cfg["threat_model"] / cfg["model_id"]
    return folder / f"{doc['run_id']}.json"


def evaluate(
    config: EvaluationConfig,
    *,
    data_dir: str | Path | None = None,
    zoo: ModelZoo | None = None,
    out_dir: str | Path | None = None,
    download: bool = False,
    train_if_missing: bool = False,
    train_config: TrainConfig | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a zoo model and write its results file.

    Args:
        config: what to evaluate.
        data_dir: data root (``--data-dir``/``$BENCH_DATA_DIR``).
        zoo: model zoo (default: ``ModelZoo()``).
        out_dir: results folder (``--out``/``$BENCH_RESULTS_DIR``, default ``./results``).
        download: let MedMNIST download a missing file.
        train_if_missing: train the model with ``train_config`` if the zoo lacks it.
        train_config: recipe used when training is needed (default: MedMNIST recipe).

    Returns:
        The result document and the path it was written to.
    """
    git = git_commit()  # the code that runs is the code checked out now
    zoo = zoo or ModelZoo()
    meta = DATASETS.get(config.dataset).meta
    MODELS.get(config.arch)
    if config.defense is not None:
        raise ConfigError("defenses are not evaluated by this version; omit --defense")
    if config.threat_model != "clean":
        raise ConfigError(f"threat model '{config.threat_model}' is not available; use 'clean'")
    size = config.size or meta.default_size
    mid = model_id(config.arch, config.dataset, size, config.seed)
    device = pick_device(config.device)
    # Load the data first: a missing or corrupt file is reported before any training.
    split = load_split(
        config.dataset, config.split, size=size, data_dir=data_dir, download=download
    )
    if not zoo.exists(mid):
        if not train_if_missing:
            raise CheckpointError(
                f"model '{mid}' is not in zoo {zoo.root}; run `bench train --dataset "
                f"{config.dataset} --model {config.arch} --size {size} --seed {config.seed}` "
                "or pass --train-if-missing"
            )
        tc = train_config or TrainConfig(dataset=config.dataset, arch=config.arch)
        tc.dataset, tc.arch, tc.size, tc.seed = config.dataset, config.arch, size, config.seed
        logger.info("model %s not in the zoo: training it (%d epochs)", mid, tc.epochs)
        train_model(tc, data_dir=data_dir, download=download, zoo=zoo)
    expect = {
        "dataset": config.dataset,
        "arch": config.arch,
        "image_size": size,
        "seed": config.seed,
    }
    model, entry = zoo.load(mid, device=device, expect=expect)
    seed_everything(config.seed)
    start = time.perf_counter()
    pred = predict(model, split, batch_size=config.batch_size, seed=config.seed)
    metrics = {"clean": compute_clean_metrics(pred)}
    seconds = time.perf_counter() - start
    created = utc_now()
    resolved = asdict(config)
    resolved.update(image_size=size, model_id=mid, device=str(device))
    resolved.pop("size")
    card = entry.card
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "benchmark_version": benchmark.__version__,
        "created_at": created,
        "run_id": f"{config.threat_model}_{created.replace(':', '').replace('-', '').lower()}",
        "git": git,
        "config": resolved,
        "seed": config.seed,
        "environment": environment(device),
        "versions": package_versions(),
        "data": {
            "dataset": config.dataset,
            "split": config.split,
            "n": len(split),
            "sha256": split.sha256,
            "source": Path(split.source_path).name,
            "license": meta.license,
        },
        "model": {
            "model_id": mid,
            "arch": config.arch,
            "checkpoint_sha256": card["checkpoint"]["sha256"],
            "card": {
                k: card[k]
                for k in (
                    "epochs",
                    "best_epoch",
                    "recipe",
                    "created_at",
                    "training_time_hours",
                    "defense",
                )
            },
        },
        "metrics": metrics,
        "timing": {"seconds": seconds},
    }
    out = paths.results_dir(out_dir)
    target = result_path(out, doc)
    n = 1
    while target.exists():  # two runs in the same second: keep both, never overwrite
        n += 1
        target = target.with_name(f"{doc['run_id']}-{n}.json")
    write_result(doc, target)
    logger.info("wrote %s", target)
    return doc, target
