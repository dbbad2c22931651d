"""Robust training of a training-time defense that is not trusted in process: the whole
trainer runs in the sandbox (:mod:`benchmark.defenses.sandbox`), and what it produces comes
out as weights, checked here."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

from benchmark.datasets.base import DATASETS, resolve_size
from benchmark.defenses.sandbox import SandboxError, SandboxLimits, SandboxSession, _resolve
from benchmark.defenses.submissions import describe_folder
from benchmark.models.zoo import ModelZoo, ZooEntry, model_id
from benchmark.results.provenance import git_commit
from benchmark.training.config import TrainConfig
from benchmark.training.defense import defense_tag
from benchmark.training.sandbox_entry import ENTRY

STAGING_CAP = 4 << 30
"""Largest total size of what a sandboxed training run may leave in its staging zoo."""


def train_in_sandbox(
    config: TrainConfig,
    *,
    data_dir: Path | None,
    zoo: ModelZoo,
    limits: SandboxLimits | None = None,
    resume: bool = True,
) -> ZooEntry:
    """``bench train --defense`` of a submission that is not in process: the whole trainer
    runs in the sandbox, reading the data (and the ``init_from`` model) and writing only a
    staging zoo under ``<zoo>/.sandbox/`` (where an interrupted run resumes). The checkpoint
    that comes out is loaded here weights-only against its sha256, its card's defense block is
    rewritten from the folder as hashed here, its git commit is the one checked out here when
    the run started (the sandbox has no repository), and it is saved into ``zoo``.

    Returns:
        The zoo entry of the robust model.
    """
    limits = limits or SandboxLimits(wall_seconds=7 * 24 * 3600.0)
    git = git_commit()  # here: the sandbox sees the package without its repository
    folder, sid = _resolve(str(config.defense))
    size = resolve_size(config.dataset, config.size)
    tag = defense_tag(sid, config.defense_params)
    mid = model_id(config.arch, config.dataset, size, config.seed, tag)
    staging = Path(zoo.root) / ".sandbox" / mid
    if not resume:
        shutil.rmtree(staging, ignore_errors=True)
    _sanitise(staging)  # what an earlier, failed sandbox left: regular files only
    staging_zoo = ModelZoo(staging)
    if config.init_from:  # the starting weights, copied in (their card and sha256 travel along)
        src = zoo.folder(config.init_from)
        dst = staging_zoo.folder(config.init_from)
        if not dst.is_dir():
            shutil.copytree(src, dst)
    # The sandbox's environment is clean: the data folder it reads (--data-dir, else
    # $BENCH_DATA_DIR, else ~/.medmnist) is resolved here and passed explicitly.
    data_root = _data_root(data_dir, config.dataset)
    reads = (data_root,) if data_root is not None else ()
    with SandboxSession(
        folder or sid, limits, read_only=reads, writable=(staging,), entry=ENTRY
    ) as session:
        fields = dataclasses.asdict(config)
        fields["defense"] = session.target
        header = {
            "op": "train",
            "config": fields,
            "data_dir": str(data_root) if data_root is not None else None,
            "zoo": str(staging.resolve()),
            "resume": resume,
        }
        answer, _ = session.request(header, wall_seconds=limits.wall_seconds)
        sandbox = session.record()
    if answer.get("model_id") != mid:
        raise SandboxError(f"submission '{sid}': the sandbox trained {answer.get('model_id')!r}")
    _sanitise(staging, refuse=True)
    meta = DATASETS.get(config.dataset).meta
    expect = {
        "model_id": mid,
        "dataset": config.dataset,
        "arch": config.arch,
        "image_size": size,
        "seed": config.seed,
        "num_classes": meta.num_classes,
        "in_channels": meta.n_channels,
        "multi_label": meta.multi_label,
    }
    model, entry = staging_zoo.load(mid, expect=expect)
    card = dict(entry.card)
    card.pop("checkpoint", None)
    defense = dict(card.get("defense") or {})
    if folder is not None:
        digest, files = describe_folder(folder)
        defense.update(sha256=digest, files=[f.record() for f in files])
    defense["id"] = sid
    card["defense"] = defense
    card["git"] = git
    card["trained_in"] = {
        "mode": "sandbox",
        "sandbox": sandbox,
        "note": "the card's history and metrics were written in the sandbox; every evaluated "
        "number is recomputed outside it",
    }
    saved = zoo.save(model, card)
    shutil.rmtree(staging, ignore_errors=True)
    return saved


def _sanitise(staging: Path, refuse: bool = False) -> None:
    """Only regular files and folders may be in the staging zoo, within a size cap: anything
    else (a symbolic link to a host file, a device, a fifo) is deleted before the sandbox
    starts, or refused once it has finished (``refuse``), and never followed."""
    if not staging.exists():
        return
    total = 0
    for p in sorted(staging.rglob("*")):
        mode = p.lstat().st_mode
        if stat.S_ISDIR(mode):
            continue
        if stat.S_ISREG(mode):
            total += p.lstat().st_size
            continue
        if refuse:
            raise SandboxError(
                f"the sandboxed training left {p.relative_to(staging)} in {staging}, which is "
                "not a regular file; refused"
            )
        p.unlink()
    if refuse and total > STAGING_CAP:
        raise SandboxError(
            f"the sandboxed training left {total >> 20} MiB in {staging} (at most "
            f"{STAGING_CAP >> 20} MiB); refused"
        )


def _data_root(data_dir: Path | None, dataset: str) -> Path | None:
    """The folder the sandboxed trainer reads the dataset from."""
    if data_dir is not None:
        return Path(data_dir).resolve()
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    home = Path.home() / ".medmnist"
    return home if home.is_dir() else None


def train_isolated(
    config: TrainConfig,
    *,
    isolation: str | None = None,
    limits: SandboxLimits | None = None,
    data_dir: Path | None = None,
    download: bool = False,
    zoo: ModelZoo | None = None,
    resume: bool = True,
) -> ZooEntry:
    """``bench train``: :func:`~benchmark.training.trainer.train_model` here for a standard
    model or a defense that may run in process (``isolation``:
    :mod:`benchmark.defenses.isolation`), :func:`train_in_sandbox` otherwise."""
    from benchmark.defenses.isolation import default_isolation, is_builtin
    from benchmark.training.trainer import train_model

    mode = default_isolation(isolation)
    zoo = zoo or ModelZoo()
    if (
        config.defense is None
        or mode == "none"
        or (mode == "builtin" and is_builtin(config.defense))
    ):
        return train_model(config, data_dir=data_dir, download=download, zoo=zoo, resume=resume)
    return train_in_sandbox(config, data_dir=data_dir, zoo=zoo, limits=limits, resume=resume)
