"""The evaluation plan: everything an evaluation loads, checks and builds before any work.

:func:`build_plan` validates the configuration, loads and validates the defense, loads the
data split and its subset, the model (training it if asked) and a training-time defense's
robust model, and builds every attack pass (:mod:`benchmark.evaluation.passes`), so a bad
parameter or a missing file costs nothing. :func:`~benchmark.evaluation.memory.plan_batch_size`
then checks the batch size against the memory the passes need, and
:func:`~benchmark.evaluation.executors.craft_pass` rebuilds a plan on a worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import torch

from benchmark.attacks.base import AttackContext
from benchmark.datasets.base import ImageSplit, load_split
from benchmark.defenses import DefendedModel
from benchmark.defenses.base import VotingDefense
from benchmark.defenses.isolation import (
    close_submission,
    default_isolation,
    isolation_record,
    open_submission,
    validate,
)
from benchmark.defenses.sandbox import SandboxLimits
from benchmark.device import pick_device
from benchmark.errors import CheckpointError, ConfigError
from benchmark.evaluation.adversarial import craft_key
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.config import BPDA_NEEDS_PREPROCESSING, EvaluationConfig
from benchmark.evaluation.defended import EOTModel
from benchmark.evaluation.draws import effective_draws, score_draws
from benchmark.evaluation.passes import AttackPass, build_passes
from benchmark.evaluation.protocol_run import check_protocol_track, protocol_filter, sanity_cells
from benchmark.metrics.base import Predictions
from benchmark.models.zoo import ModelZoo, model_id
from benchmark.results.naming import ThreatModel
from benchmark.training import TrainConfig, train_model

logger = logging.getLogger(__name__)


@dataclass
class EvaluationPlan:
    """An evaluation loaded, validated and built, ready to run.

    Attributes:
        config: the validated configuration (its batch size resolved by
            :func:`~benchmark.evaluation.memory.plan_batch_size`).
        full: the whole data split (its sha256 and size are recorded).
        split: the scored images: ``full`` or its seeded subset.
        indices: indices of ``split`` in ``full``.
        device: the resolved device.
        model_id: zoo id of the base model.
        model: the base model.
        entry: its zoo entry.
        deployed: the zoo entry of the model that answers queries (the base model, or a
            training-time defense's robust model).
        scorer: what scores images: the base model, the defended pipeline or the robust model.
        passes: every attack pass, in run order.
        submission: the loaded defense submission (None undefended).
        defense: the built defense.
        defended: the deployed defended pipeline.
        adaptive_model: the EOT/BPDA pipeline adaptive attacks differentiate.
        robust_sha: checkpoint sha256 of a training-time defense's robust model.
        isolation: where the submission's code runs (:func:`isolation_record`).
    """

    config: EvaluationConfig
    full: ImageSplit
    split: ImageSplit
    indices: torch.Tensor
    device: torch.device
    model_id: str
    model: torch.nn.Module
    entry: Any
    deployed: Any
    scorer: torch.nn.Module
    passes: list[AttackPass]
    submission: Any = None
    defense: Any = None
    defended: torch.nn.Module | None = None
    adaptive_model: torch.nn.Module | None = None
    robust_sha: str | None = None
    isolation: dict[str, Any] | None = None

    def close(self) -> None:
        """End the submission's sandbox, if it has one."""
        close_submission(self.submission)

    @property
    def model_sha(self) -> str:
        """Checkpoint sha256 of the base model."""
        return self.entry.card["checkpoint"]["sha256"]

    @property
    def size(self) -> int:
        """The image size."""
        return self.config.resolved_size

    @property
    def has_attacks(self) -> bool:
        """Whether the run has attack cells (else it is a clean evaluation)."""
        return bool(self.config.attacks)

    @property
    def training_defense(self) -> bool:
        """Whether the defense is a training-time one (its robust model is the scorer)."""
        return self.submission is not None and self.submission.meta.kind == "training"

    def score(
        self, images: torch.Tensor, split: ImageSplit | None = None
    ) -> tuple[Predictions, dict[str, Any] | None, dict[str, Any] | None]:
        """Score ``images`` (standing for ``split``'s samples, default the plan's) as the run
        scores: through the deployed pipeline, worst of the run's draws for a randomized
        defense (:func:`~benchmark.evaluation.draws.score_draws`)."""
        return score_draws(
            self.scorer,
            images,
            self.split if split is None else split,
            seed=self.config.seed,
            draws=effective_draws(self.scorer, self.config.draws),
            batch_size=self.config.batch_size,
        )

    def pass_key(self, p: AttackPass) -> str:
        """The cache key of pass ``p``'s examples (what :func:`craft_cell` stores them under)."""
        return craft_key(
            self.model_sha, self.split, self.indices, p.attack, self.config.batch_size, p.key_extra
        )

    def cell_arguments(self, p: AttackPass) -> dict[str, Any]:
        """The arguments :func:`~benchmark.evaluation.adversarial.craft_cell` and ``run_cell``
        take for pass ``p`` of this plan, which define its examples and their cache key."""
        return {
            "model": p.target,
            "split": self.split,
            "cell": p.cell,
            "attack": p.attack,
            "indices": self.indices,
            "model_sha256": self.model_sha,
            "seed": self.config.seed,
            "batch_size": self.config.batch_size,
            "context": p.context,
            "key_extra": p.key_extra,
        }


def select_subset(n: int, n_examples: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random subset of ``n_examples`` out of ``n`` (all if None)."""
    if n_examples is None or n_examples >= n:
        return torch.arange(n)
    if n_examples < 1:
        raise ConfigError(f"--n-examples must be >= 1, got {n_examples}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:n_examples].sort().values


def build_plan(
    config: EvaluationConfig,
    *,
    data_dir: Any = None,
    zoo: ModelZoo,
    cache: AdversarialCache,
    download: bool = False,
    train_if_missing: bool = False,
    train_config: TrainConfig | None = None,
    progress: bool | None = None,
    isolation: str | None = None,
    sandbox_limits: SandboxLimits | None = None,
) -> EvaluationPlan:
    """Validate ``config``, load the defense, the data and the model(s), build every pass.

    Args:
        config: what to evaluate.
        data_dir: data root.
        zoo: the model zoo.
        cache: the adversarial-example cache (its folder is in the attack context).
        download: let MedMNIST download a missing file.
        train_if_missing: train the model if the zoo lacks it.
        train_config: the recipe then (default: :meth:`EvaluationConfig.train_config`).
        progress: show progress bars (default: only on a terminal).
        isolation: where the defense's code runs: ``sandbox``, ``builtin`` or ``none``
            (:mod:`benchmark.defenses.isolation`; default ``$BENCH_ISOLATION``, else
            ``sandbox``). It changes no number; the plan's sandbox ends with
            :meth:`EvaluationPlan.close`.
        sandbox_limits: the sandbox's resource limits (default :class:`SandboxLimits`).

    Returns:
        The plan.

    Raises:
        ConfigError: a bad configuration, defense parameter or attack parameter.
        CheckpointError: a model missing from the zoo.
    """
    config.validate()
    mode = default_isolation(isolation)
    submission = None
    if config.defense is not None:  # load and validate the plugin before any work
        submission = open_submission(config.defense, mode, sandbox_limits)
        try:
            validate(submission, **config.defense_params)
            if config.bpda_always and submission.meta.kind != "preprocessing":
                raise ConfigError(BPDA_NEEDS_PREPROCESSING)
            return _build_plan(
                config,
                submission,
                mode,
                data_dir,
                zoo,
                cache,
                download,
                train_if_missing,
                train_config,
                progress,
            )
        except BaseException:
            close_submission(submission)
            raise
    return _build_plan(
        config, None, mode, data_dir, zoo, cache, download, train_if_missing, train_config, progress
    )


def _build_plan(
    config: EvaluationConfig,
    submission: Any,
    mode: str,
    data_dir: Any,
    zoo: ModelZoo,
    cache: AdversarialCache,
    download: bool,
    train_if_missing: bool,
    train_config: TrainConfig | None,
    progress: bool | None,
) -> EvaluationPlan:
    """:func:`build_plan` once the submission (if any) is open and has passed the suite."""
    size, device = config.resolved_size, pick_device(config.device)
    # Data first: a missing or corrupt file is reported before any training or attack.
    full = load_split(config.dataset, config.split, size=size, data_dir=data_dir, download=download)
    indices = select_subset(len(full), config.n_examples, config.images_seed)
    split = full.subset(indices) if len(indices) < len(full) else full
    mid = _ensure_model(config, zoo, data_dir, download, train_if_missing, train_config)
    model, entry = zoo.load(mid, device=device, expect=_expect(config))
    plan = EvaluationPlan(
        config=config,
        full=full,
        split=split,
        indices=indices,
        device=device,
        model_id=mid,
        model=model,
        entry=entry,
        deployed=entry,  # the model that answers queries: the base model or a robust one
        scorer=model,
        passes=[],
        isolation=isolation_record(submission, mode) if submission is not None else None,
    )
    if submission is not None:
        _add_defense(plan, submission, zoo)
    else:
        check_protocol_track(config.protocol, None)
    plan.passes = _build_passes(
        plan,
        AttackContext(
            dataset=config.dataset,
            size=size,
            seed=config.seed,
            data_dir=data_dir,
            zoo_root=zoo.root,
            cache_root=cache.root,
            model_sha256=plan.model_sha,
            progress=progress,
        ),
    )
    return plan


def _build_passes(plan: EvaluationPlan, context: AttackContext) -> list[AttackPass]:
    """The plan's attack passes over its cells and, after them, the large-eps sanity cells."""
    config = plan.config
    cells = list(config.attacks)
    sanity = sanity_cells(config.protocol) if cells and config.sanity_attack else []
    cells += sanity
    return build_passes(
        config.pass_threat_models,
        cells,
        seed=config.seed,
        context=context,
        model=plan.model,
        defended=plan.defended,
        adaptive_model=plan.adaptive_model,
        defense=plan.defense,
        robust_sha=plan.robust_sha,
        bpda_always=config.bpda_always,
        submission_sha=None if plan.submission is None else plan.submission.sha256,
        sanity_cells=sanity,
        keep=protocol_filter(config.protocol, plan.defense),
    )


def _expect(config: EvaluationConfig) -> dict[str, Any]:
    """What the zoo card of the evaluated model must record."""
    return {
        "dataset": config.dataset,
        "arch": config.arch,
        "image_size": config.resolved_size,
        "seed": config.seed,
    }


def _add_defense(plan: EvaluationPlan, submission: Any, zoo: ModelZoo) -> None:
    """Build the defense into ``plan``: a training-time defense is its robust model (oblivious
    attacks are crafted on the standard model and shared through the cache, adaptive and
    black-box ones on it); an inference-time one wraps the base model, with an EOT/BPDA
    pipeline for the adaptive pass."""
    config = plan.config
    check_protocol_track(config.protocol, submission.meta.kind)
    defense = submission.build(seed=config.seed, **config.defense_params)
    if config.corruption_protocol is not None and isinstance(defense, VotingDefense):
        raise ConfigError(
            f"--corruptions {config.corruption_protocol.id} does not rank a voting defense "
            "(its abstentions are not scored on corrupted images): use a corruption preset "
            "for an exploratory run"
        )
    plan.submission, plan.defense = submission, defense
    if submission.meta.kind == "training":
        robust, plan.deployed = _load_robust(zoo, config, submission, defense, plan.device)
        plan.robust_sha = plan.deployed.card["checkpoint"]["sha256"]
        plan.scorer = plan.defended = plan.adaptive_model = robust
        return
    plan.defended = plan.scorer = DefendedModel(plan.model, defense)
    if ThreatModel.ADAPTIVE.value in config.threat_models:
        pipeline = DefendedModel(plan.model, defense, adaptive=True, bpda_always=config.bpda_always)
        plan.adaptive_model = EOTModel(pipeline, config.eot_samples)


def _ensure_model(
    config: EvaluationConfig,
    zoo: ModelZoo,
    data_dir: Any,
    download: bool,
    train_if_missing: bool,
    train_config: TrainConfig | None,
) -> str:
    """The zoo id of the configuration's model, trained first if missing and asked to."""
    size = config.resolved_size
    mid = model_id(config.arch, config.dataset, size, config.seed)
    if zoo.exists(mid):
        return mid
    if not train_if_missing:
        raise CheckpointError(
            f"model '{mid}' is not in zoo {zoo.root}; run `bench train --dataset "
            f"{config.dataset} --model {config.arch} --size {size} --seed {config.seed}` "
            "or pass --train-if-missing"
        )
    tc = config.train_config()
    if train_config is not None:  # a caller's recipe, for this configuration's model
        tc = replace(
            train_config, dataset=config.dataset, arch=config.arch, size=size, seed=config.seed
        )
    logger.info("model %s not in the zoo: training it (%d epochs)", mid, tc.epochs)
    train_model(tc, data_dir=data_dir, download=download, zoo=zoo)
    return mid


def _load_robust(
    zoo: ModelZoo,
    config: EvaluationConfig,
    submission: Any,
    defense: Any,
    device: torch.device,
) -> tuple[torch.nn.Module, Any]:
    """The zoo's robust model of a training-time defense; refused unless its card records
    this submission (id and sha256) and these parameters."""
    from benchmark.training import defense_tag

    size = config.resolved_size
    tag = defense_tag(submission.id, config.defense_params)
    rid = model_id(config.arch, config.dataset, size, config.seed, tag)
    if not zoo.exists(rid):
        params = "".join(f" --defense-param {k}={v}" for k, v in config.defense_params.items())
        raise CheckpointError(
            f"robust model '{rid}' is not in zoo {zoo.root}; train it with `bench train "
            f"--dataset {config.dataset} --model {config.arch} --size {size} --seed "
            f"{config.seed} --defense {submission.id}{params}`"
        )
    robust_expect = {
        **_expect(config),
        "defense.id": submission.id,
        "defense.sha256": submission.sha256,
        "defense.params": dict(sorted(defense.params.items())),
    }
    return zoo.load(rid, device=device, expect=robust_expect)


def load_reference(plan: EvaluationPlan, zoo: ModelZoo) -> tuple[str, Any, str] | None:
    """The corruption reference model (id, model, checkpoint sha256), or None without one."""
    config = plan.config
    if config.corruptions is None or not config.corruption_reference:
        return None
    ref_model, ref_entry = zoo.load(
        config.corruption_reference,
        device=plan.device,
        expect={"dataset": config.dataset, "image_size": plan.size},
    )
    return config.corruption_reference, ref_model, ref_entry.card["checkpoint"]["sha256"]


__all__ = [
    "EvaluationPlan",
    "build_plan",
    "load_reference",
    "select_subset",
]
