"""Retrain a published zoo model from its committed card and check the weights' sha256.

A model card records every choice of its run (:func:`benchmark.training.card.recipe`), the
thread count and the CPU kernels it ran with (``environment``) and the sha256 of the weights it
produced. :func:`plan_rebuild` turns the cards of the requested models (and of the models they
were fine-tuned from, when the zoo lacks them) into training runs in dependency order;
:func:`rebuild` runs one with the card's thread count and kernels and returns a
:class:`RebuildRecord`: whether the retrained checkpoint is bit-identical to the published one,
and, where it cannot be, why (another device, torch build or CPU kernels, another data file or
submission folder: :mod:`benchmark.training.reproducibility`). This is how a user checks the
README's reproducibility promise, and how a machine whose zoo was lost gets the published
checkpoints back.
"""

from __future__ import annotations

import fnmatch
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import ConfigError
from benchmark.models.zoo import CARD, ModelZoo, ZooEntry
from benchmark.results.cards import REBUILD_SCHEMA
from benchmark.results.io import atomic_write_json
from benchmark.results.provenance import git_commit, utc_now
from benchmark.training.config import SELECTION_RULES, TrainConfig
from benchmark.training.reproducibility import (
    cpu_isa_of,
    defense_folder_sha256,
    host_isa_of,
    reproducibility_gaps,
)
from benchmark.training.selection import selection_description

logger = logging.getLogger(__name__)


_CONFIG_FIELDS = (
    "dataset",
    "arch",
    "size",
    "epochs",
    "batch_size",
    "lr",
    "gamma",
    "seed",
    "channels_last",
    "defense_params",
    "select_eps",
    "select_steps",
    "init_from",
)


def config_from_card(card: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` that produced ``card``, read back from its recipe.

    The recipe stores the selection rule in words; the rule is the one of ``auto``, ``auc`` and
    ``robust`` whose description is that text. The device is the card's own (a CPU card is
    retrained on the CPU even where CUDA is present).

    Raises:
        ConfigError: the card has no recipe or a recipe this version cannot read back.
    """
    rec = card.get("recipe")
    mid = card.get("model_id", "?")
    if not isinstance(rec, dict):
        raise ConfigError(f"card '{mid}' has no recipe; it cannot be retrained from its card")
    missing = [k for k in (*_CONFIG_FIELDS, "milestones", "defense", "selection") if k not in rec]
    if missing:
        raise ConfigError(
            f"card '{mid}' recipe lacks {', '.join(missing)}; retrain it with bench train"
        )
    fields = {k: rec[k] for k in _CONFIG_FIELDS}
    device = str((card.get("environment") or {}).get("device", "cpu"))
    config = TrainConfig(
        **fields,
        milestones=tuple(rec["milestones"]),
        defense=rec["defense"],
        device="cpu" if device == "cpu" else "auto",
    )
    for rule in SELECTION_RULES:
        config.selection = rule
        if selection_description(config) == rec["selection"]:
            config.validate()
            return config
    raise ConfigError(
        f"card '{mid}': selection rule {rec['selection']!r} is not one this version knows"
    )


@dataclass
class RebuildStep:
    """One model to retrain: its published card and the run that reproduces it."""

    model_id: str
    card: dict[str, Any]
    config: TrainConfig
    threads: int
    cpu_isa: str
    requested: bool = True
    """False for a model trained only because a requested one is fine-tuned from it."""

    @property
    def published_sha256(self) -> str:
        """The checkpoint sha256 the card publishes."""
        return str(self.card["checkpoint"]["sha256"])

    @property
    def estimate_seconds(self) -> float:
        """The card's own training time (same thread count and kernels: the best guess)."""
        return float(self.card.get("training_time_seconds") or 0.0)


@dataclass
class RebuildRecord:
    """What a retrain from a card gave, as written to ``benchmarks/records/rebuild/``."""

    model_id: str
    published_sha256: str
    rebuilt_sha256: str
    identical: bool
    expected_identical: bool
    gaps: list[str]
    seconds: float
    threads: int
    cpu_isa: str
    published: dict[str, Any]
    rebuilt: dict[str, Any]
    git: dict[str, Any]
    created_at: str = field(default_factory=utc_now)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (with its schema tag)."""
        return {"schema": REBUILD_SCHEMA, **self.__dict__}


def _card_summary(card: dict[str, Any]) -> dict[str, Any]:
    """The parts of a card a record compares: weights, test scores, selected epoch, run."""
    test = (card.get("metrics") or {}).get("test") or {}
    env = card.get("environment") or {}
    init = (card.get("recipe") or {}).get("init")
    return {
        "sha256": card["checkpoint"]["sha256"],
        "best_epoch": card.get("best_epoch"),
        "test_acc": (test.get("acc") or {}).get("value"),
        "test_auc": (test.get("auc") or {}).get("value"),
        "data_sha256": sorted({d["sha256"] for d in (card.get("data") or {}).values()}),
        "git": (card.get("git") or {}).get("commit"),
        "torch": env.get("torch"),
        "cpu_capability": env.get("cpu_capability"),
        "cpu": env.get("cpu"),
        "cpu_host_isa": host_isa_of(env),
        "num_threads": env.get("num_threads"),
        "training_time_seconds": card.get("training_time_seconds"),
        "cpu_isa_env": env.get("cpu_isa_env") or {},
        "init_sha256": init.get("checkpoint_sha256") if isinstance(init, dict) else None,
        "resumed": card.get("resumed") or [],
    }


def plan_rebuild(
    patterns: Sequence[str],
    cards: Sequence[dict[str, Any]],
    zoo: ModelZoo,
    *,
    missing_only: bool = False,
) -> list[RebuildStep]:
    """The training runs that rebuild the models matching ``patterns`` (wildcards over the
    committed cards' ids), each after the model it is fine-tuned from when the zoo lacks that
    one with its published sha256. With ``missing_only``, a matching model the zoo already
    holds with its published sha256 is not retrained (how a machine that lost part of its zoo
    gets it back); without it, every match is retrained, to check its card.

    Raises:
        ConfigError: a pattern matches no card, a card cannot be read back into a run, or a
            model is fine-tuned from one that has no committed card.
    """
    by_id = {c["model_id"]: c for c in cards}
    wanted: list[str] = []
    for pattern in patterns:
        hits = sorted(m for m in by_id if fnmatch.fnmatchcase(m, pattern))
        if not hits:
            raise ConfigError(f"no committed card matches '{pattern}'; see bench zoo report")
        wanted.extend(h for h in hits if h not in wanted)
    if missing_only:
        wanted = [m for m in wanted if not in_zoo_as_published(zoo, by_id[m])]
    steps: list[RebuildStep] = []
    planned: set[str] = set()

    def add(mid: str, requested: bool, chain: tuple[str, ...]) -> None:
        if mid in planned:
            return
        if mid in chain:
            raise ConfigError(f"cards fine-tune in a cycle: {' -> '.join((*chain, mid))}")
        card = by_id[mid]
        config = config_from_card(card)
        if config.init_from is not None:
            start = config.init_from
            if start not in by_id:
                raise ConfigError(
                    f"'{mid}' is fine-tuned from '{start}', which has no committed card"
                )
            if not in_zoo_as_published(zoo, by_id[start]):
                add(start, False, (*chain, mid))
        env = card.get("environment") or {}
        steps.append(
            RebuildStep(
                model_id=mid,
                card=card,
                config=config,
                threads=int(env.get("num_threads") or torch.get_num_threads()),
                cpu_isa=cpu_isa_of(env),
                requested=requested,
            )
        )
        planned.add(mid)

    for mid in wanted:
        add(mid, True, ())
    return steps


def in_zoo_as_published(zoo: ModelZoo, card: dict[str, Any]) -> bool:
    """True when the zoo holds the card's model with the card's checkpoint sha256."""
    mid = card["model_id"]
    if not zoo.exists(mid):
        return False
    try:
        entry = zoo.entry(mid)
    except Exception:
        return False
    return entry.card.get("checkpoint", {}).get("sha256") == card["checkpoint"]["sha256"]


Trainer = Callable[[TrainConfig, ModelZoo], ZooEntry]
"""Trains a config into a zoo (``bench zoo rebuild`` passes the trainer of ``bench train``)."""

SCRATCH = ".rebuild"
"""The zoo's sub-folder where retrains run (``<zoo>/.rebuild/<model id>/``): a retrain is
installed in the zoo only when it is the published checkpoint, so neither a published model
nor another one under the id is ever overwritten; one that differs stays there to inspect."""


def _environment_drift(published: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """What the retrain ran with that the card did not (threads, kernels, torch)."""
    out = []
    for key, what in (
        ("num_threads", "threads"),
        ("cpu_capability", "CPU kernels"),
        ("cpu_isa_env", "kernel variables"),
        ("torch", "torch"),
    ):
        if (published.get(key) or None) != (rebuilt.get(key) or None):
            out.append(
                f"retrained with {what} {rebuilt.get(key)} where the card has {published.get(key)}"
            )
    return out


def rebuild(step: RebuildStep, zoo: ModelZoo, train: Trainer) -> RebuildRecord:
    """Retrain ``step``'s model with the card's thread count in a scratch zoo
    (:data:`SCRATCH`), install it in ``zoo`` when its sha256 is the card's, and return what it
    gave. The model it is fine-tuned from must be in ``zoo`` (:func:`plan_rebuild` orders the
    steps so); its verified copy starts the run. The CPU kernels must already be the card's
    (:func:`benchmark.device.pin_cpu_isa`, checked by the caller: they are chosen when the
    process starts). An interrupted retrain resumes in the scratch zoo, which only retrains of
    this card write to.

    Raises:
        ConfigError: the zoo holds this model with other weights (refused before any work).
        CheckpointError: the model it starts from is missing or fails its sha256 check.
    """
    from benchmark.results.provenance import environment

    mid = step.model_id
    if zoo.exists(mid) and not in_zoo_as_published(zoo, step.card):
        raise ConfigError(
            f"zoo {zoo.root} holds '{mid}' with weights other than the published ones; move "
            f"{zoo.folder(mid)} away to rebuild it"
        )
    here = environment("cpu")
    gaps = reproducibility_gaps(step.card, here, defense_folder_sha256(step.config.defense))
    scratch = ModelZoo(Path(zoo.root) / SCRATCH / mid)
    if step.config.init_from is not None:
        start_id = step.config.init_from
        zoo.load(start_id)  # the checkpoint against its card's sha256, weights-only
        for stale in (scratch.folder(start_id), scratch.root / ".sandbox" / mid / start_id):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.copytree(zoo.folder(start_id), scratch.folder(start_id))
    before = torch.get_num_threads()
    torch.set_num_threads(step.threads)
    git = git_commit()
    start = time.perf_counter()
    try:
        entry = train(step.config, scratch)
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - start
    rebuilt = entry.card["checkpoint"]["sha256"]
    published = _card_summary(step.card)
    mine = _card_summary(entry.card)
    if published["data_sha256"] != mine["data_sha256"]:
        gaps.append("the data file's sha256 differs from the card's")
    if published["init_sha256"] != mine["init_sha256"]:
        gaps.append(f"started from weights of '{step.config.init_from}' other than the card's")
    # What the run itself shows, unless a gap known beforehand already says it.
    said = {what for what in ("CPU kernels ", "torch ") if any(g.startswith(what) for g in gaps)}
    gaps += [
        d
        for d in _environment_drift(published, mine)
        if not any(d.startswith(f"retrained with {what}") for what in said)
    ]
    identical = rebuilt == step.published_sha256
    if identical:
        if not zoo.exists(mid):
            Path(zoo.root).mkdir(parents=True, exist_ok=True)
            shutil.rmtree(zoo.folder(mid), ignore_errors=True)  # an incomplete folder
            entry.path.rename(zoo.folder(mid))
            # The zoo holds the published model: its weights and its card (its provenance is
            # the original training's; the record keeps the retrain's).
            atomic_write_json(zoo.folder(mid) / CARD, step.card)
        shutil.rmtree(scratch.root, ignore_errors=True)
    else:
        logger.warning("the retrain of %s differs; it stays in %s", mid, entry.path)
    return RebuildRecord(
        model_id=mid,
        published_sha256=step.published_sha256,
        rebuilt_sha256=rebuilt,
        identical=identical,
        expected_identical=not gaps,
        gaps=gaps,
        seconds=seconds,
        threads=step.threads,
        cpu_isa=step.cpu_isa,
        published=published,
        rebuilt=mine,
        git=git,
    )


def check_kernels(steps: Iterable[RebuildStep]) -> tuple[str, dict[str, str]]:
    """The one ``--cpu-isa`` all ``steps`` share (a process runs one set of kernels), and the
    kernel variables their cards recorded (empty for ``native``): a rebuild sets the card's
    own, which an older pinned card set otherwise than ``bench train --cpu-isa`` does now
    (:data:`benchmark.device.ISA_ENV`).

    Raises:
        ConfigError: the steps were trained with different pinned kernels or variables.
    """
    steps = list(steps)
    isas = sorted({s.cpu_isa for s in steps})
    if len(isas) > 1:
        raise ConfigError(
            f"the cards were trained with different CPU kernels ({', '.join(isas)}); rebuild "
            "each group in its own process"
        )
    variables = sorted(
        {
            tuple(sorted(((s.card.get("environment") or {}).get("cpu_isa_env") or {}).items()))
            for s in steps
            if s.cpu_isa != "native"
        }
    )
    if len(variables) > 1:
        raise ConfigError(
            "the cards pinned their CPU kernels with different variables "
            f"({'; '.join(str(dict(v)) for v in variables)}); rebuild each group in its own "
            "process"
        )
    return (isas[0] if isas else "native"), dict(variables[0]) if variables else {}


__all__ = [
    "RebuildRecord",
    "RebuildStep",
    "check_kernels",
    "config_from_card",
    "plan_rebuild",
    "rebuild",
]
