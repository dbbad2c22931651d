"""``bench transfer``: a dataset's transfer matrix (the file format is in
:mod:`benchmark.results.transfer`).

Targets are the dataset's leaderboard entries: for each, its newest results file is turned back
into its evaluation plan (:func:`~benchmark.evaluation.replay.config_from_result`), so the
target is the entry's deployed pipeline (checkpoint, checked against the sha256 the result
records; defense and parameters; worst of its draws for a randomized defense) scored on the
whole test split, whatever subset its own run scored. Sources are the checkpoints those
entries deploy (the undefended model, or a training-time defense's robust model) and any other
zoo model named with ``sources`` (e.g. another architecture); such a model is a target too.

Every transfer attack of the protocol is crafted white-box on each source's bare model, once,
on the whole split (cached batch by batch: an interrupted run resumes), and every target
scores every source's examples. A cell is the target's accuracy on them per attack and worst
over the attacks: an image counts only if the target classifies it right clean and under every
attack. A cell whose source is the target's own checkpoint (``own``) is not a transfer (it is
the white-box or, through a defense, the oblivious setting) and is not part of the target's
worst transfer.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import benchmark
from benchmark.attacks.base import ATTACKS
from benchmark.attacks.presets import AttackCell
from benchmark.errors import CheckpointError, ConfigError
from benchmark.evaluation.adversarial import craft_cell
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.transfer_targets import (
    Source,
    Target,
    accuracy_block,
    board_results,
    open_target,
    source_of,
    zoo_entry,
)
from benchmark.models.zoo import ModelZoo
from benchmark.results.io import atomic_write_bytes
from benchmark.results.outcomes import indices_block, labels_block
from benchmark.results.provenance import environment, git_commit, package_versions, utc_now
from benchmark.results.transfer import MRB_TRANSFER_V1, SCHEMA, TransferProtocol

logger = logging.getLogger(__name__)


def _time_source(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Seconds of one forward and backward pass of ``model`` on ``x`` (after a warm-up)."""
    loss_fn = torch.nn.CrossEntropyLoss()
    x = x.clone().requires_grad_(True)
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        loss_fn(model(x), y).backward()
        seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)  # the timing leaves no gradient behind
    return seconds


def transfer_matrix(
    dataset: str,
    *,
    results_root: str | Path = "leaderboard/results",
    protocol: TransferProtocol = MRB_TRANSFER_V1,
    sources: tuple[str, ...] | list[str] = (),
    targets: tuple[str, ...] | list[str] = (),
    skip_missing: bool = False,
    zoo: str | Path | None = None,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 128,
    isolation: str | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Compute the transfer matrix of ``dataset`` (see the module docstring).

    Args:
        results_root: the published results (the entries' runs).
        sources: zoo ids of further source models (also scored as targets, undefended).
        targets: wildcard patterns of entry keys to score (default: every entry).
        skip_missing: leave out, with the reason, the entries whose checkpoint is not in the
            zoo (else that is an error, before any work).

    Returns:
        The matrix document (:data:`~benchmark.results.transfer.SCHEMA`); write it with
        :func:`write_transfer`.

    Raises:
        ConfigError: no entry to score, or images that differ between the entries.
        CheckpointError: a checkpoint is missing or not the one an entry evaluated.
    """
    root = Path(results_root)
    zoo_ = ModelZoo(zoo)
    cache = AdversarialCache(cache_dir)
    found = board_results(root, dataset)
    left_out: list[dict[str, str]] = []
    if targets:
        chosen = {k: v for k, v in found.items() if any(fnmatch.fnmatch(k, p) for p in targets)}
        left_out += [
            {"key": k, "reason": "not selected in this run (--target " + " ".join(targets) + ")"}
            for k in found
            if k not in chosen
        ]
        found = chosen
    if not found and not sources:
        raise ConfigError(
            f"no entry of {dataset} under {root} (or none matches --target): evaluate one with "
            "bench evaluate first"
        )
    opened: list[Target] = []
    started = time.perf_counter()
    git = git_commit()  # the code that runs is the code checked out now
    try:
        for key, (path, doc) in found.items():
            try:
                opened.append(
                    open_target(
                        path,
                        doc,
                        root,
                        zoo=zoo_,
                        data_dir=data_dir,
                        cache=cache,
                        device=device,
                        isolation=isolation,
                    )
                )
            except CheckpointError as exc:
                if not skip_missing:
                    raise
                left_out.append({"key": key, "reason": str(exc).splitlines()[0]})
                logger.warning("left out %s: %s", key, exc)
        return _compute(
            dataset,
            opened,
            left_out,
            protocol=protocol,
            extra=list(sources),
            zoo=zoo_,
            data_dir=data_dir,
            cache=cache,
            device=device,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            started=started,
            git=git,
        )
    finally:
        for t in opened:
            if t.plan is not None:
                t.plan.close()


def _compute(
    dataset: str,
    opened: list[Target],
    left_out: list[dict[str, str]],
    *,
    protocol: TransferProtocol,
    extra: list[str],
    zoo: ModelZoo,
    data_dir: str | Path | None,
    cache: AdversarialCache,
    device: str,
    batch_size: int,
    seed: int,
    progress: bool | None,
    started: float,
    git: dict[str, Any],
) -> dict[str, Any]:
    from benchmark.datasets.base import load_split, resolve_size
    from benchmark.device import pick_device, seed_everything

    dev = opened[0].plan.device if opened else pick_device(device)
    if opened:
        split = opened[0].plan.full
        size = opened[0].plan.size
    else:
        size = resolve_size(dataset, zoo.entry(extra[0]).card.get("image_size"))
        split = load_split(dataset, protocol.split, size=size, data_dir=data_dir)
    for t in opened:  # every target scores the very images the sources are attacked on
        full = t.plan.full
        if (
            t.plan.size != size
            or full.sha256 != split.sha256
            or not torch.equal(full.images, split.images)
            or not torch.equal(full.labels, split.labels)
        ):
            raise ConfigError(
                f"{t.key} scores other images than the other entries (size {t.plan.size}, "
                f"not {size}): give the matrix entries of one image size"
            )
    if split.split != protocol.split:
        raise ConfigError(f"the protocol scores the {protocol.split} split, not {split.split}")
    # Sources: every checkpoint an entry deploys, then the named zoo models.
    srcs: dict[str, Source] = {}
    for t in opened:
        s = source_of(t)
        srcs.setdefault(s.sha256, s)
    bare: list[Target] = []
    for mid in extra:
        model, entry = zoo.load(mid, device=dev, expect={"dataset": dataset, "image_size": size})
        model.eval()
        sha = entry.card["checkpoint"]["sha256"]
        arch = entry.card.get("arch", "")
        key, label, defense = zoo_entry(entry.card, dataset, size, sha)
        srcs.setdefault(sha, Source(mid, sha, arch, model, defense))
        if all(t.key != key for t in opened):
            target_defense = (
                None if defense is None else {**defense, "kind": "training", "randomized": False}
            )
            bare.append(Target(key, label, mid, arch, sha, model=model, defense=target_defense))
    everyone = opened + bare
    sources = list(srcs.values())
    indices = torch.arange(len(split))
    # The estimate, before any work: one timed forward/backward batch per source.
    x, y = next(split.batches(min(batch_size, len(split)), device=dev))
    n_batches = (len(split) + batch_size - 1) // batch_size
    steps = sum(int(dict(p).get("steps", 1)) for _, p in protocol.attacks)
    per_source = {s.model_id: _time_source(s.model, x, y) * n_batches * steps for s in sources}
    logger.info(
        "transfer matrix of %s: %d sources x %d targets, %d images; crafting (uncached) "
        "takes about %.1f min here (%s), then %d scorings",
        dataset,
        len(sources),
        len(everyone),
        len(split),
        sum(per_source.values()) / 60,
        ", ".join(f"{k} {v / 60:.1f} min" for k, v in per_source.items()),
        len(everyone) * (1 + len(sources) * len(protocol.attacks)),
    )
    seed_everything(seed)
    adversarial: dict[tuple[int, str], torch.Tensor] = {}
    craft_start = time.perf_counter()
    for i, s in enumerate(sources):
        for attack_id, params in protocol.attacks:
            cell = AttackCell.make(attack_id, protocol.eps, **dict(params))
            attack = ATTACKS.get(attack_id)(s.model, eps=protocol.eps, seed=seed, **dict(params))
            x_adv, hit = craft_cell(
                s.model,
                split,
                cell,
                attack,
                indices=indices,
                model_sha256=s.sha256,
                seed=seed,
                batch_size=batch_size,
                cache=cache,
                progress=progress,
            )
            adversarial[(i, attack_id)] = x_adv
            logger.info("%s on %s: %s", cell.cell_id, s.model_id, "cached" if hit else "crafted")
    craft_seconds = time.perf_counter() - craft_start
    score_start = time.perf_counter()
    clean_images = split.images.float().div(255.0)
    cells = []
    for j, t in enumerate(everyone):
        t.clean = t.correct(clean_images, split, batch_size, seed)
        for i, s in enumerate(sources):
            per_attack = {
                a: t.correct(adversarial[(i, a)], split, batch_size, seed)
                for a, _ in protocol.attacks
            }
            worst = np.logical_and.reduce([t.clean, *per_attack.values()])
            cells.append(
                {
                    "id": f"s{i}-t{j}",
                    "source": i,
                    "target": j,
                    "own": s.sha256 == t.deployed_sha256,
                    "per_attack": {a: accuracy_block(c) for a, c in per_attack.items()},
                    "worst": accuracy_block(worst),
                }
            )
        logger.info("scored %s: clean %.3f", t.key, float(t.clean.mean()))
    score_seconds = time.perf_counter() - score_start
    return {
        "schema": SCHEMA,
        "protocol": protocol.record(),
        "protocol_resolved": protocol.resolved(),
        "dataset": dataset,
        "image_size": size,
        "seed": seed,
        "created_at": utc_now(),
        "benchmark_version": benchmark.__version__,
        "data": {
            "split": split.split,
            "n": len(split),
            "n_split": len(split),
            "sha256": split.sha256,
            "source": Path(split.source_path).name,
            "indices": indices_block(indices.tolist(), len(split)),
            "labels": labels_block(split.labels.numpy()),
        },
        "sources": [s.record() for s in sources],
        "targets": [t.record() for t in everyone],
        "left_out": left_out,
        "cells": cells,
        "cost": {
            "device": str(dev),
            "batch_size": batch_size,
            "craft_seconds": round(craft_seconds, 1),
            "score_seconds": round(score_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
        "environment": environment(dev),
        "versions": package_versions(),
        "git": git,
    }


def write_transfer(doc: dict[str, Any], path: str | Path) -> Path:
    """Write a matrix document atomically (and check it reads back)."""
    import json

    from benchmark.results.transfer import read_transfer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    check = path.with_name(f".{path.name}.check")
    try:  # the document must read back before it replaces anything
        atomic_write_bytes(check, data)
        read_transfer(check)
    finally:
        check.unlink(missing_ok=True)
    atomic_write_bytes(path, data)
    return path


__all__ = ["transfer_matrix", "write_transfer"]
