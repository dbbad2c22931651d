"""The evaluation runner: resolve the model (and defense), score it clean, under attack and
under corruptions, write one versioned results file.

A run is a set of cells (one per attack configuration) on one dataset split and one zoo
model, optionally behind a defense submission and then once per threat model. The defense is
validated and every attack built before any work (a bad parameter costs nothing), each cell's
adversarial examples are cached on disk (so a rerun after an interruption, or a defense
evaluated against the same oblivious attack, does no attack work), corrupted images and their
predictions are cached the same way (:mod:`benchmark.evaluation.corruption`), and the result
file is written once, atomically, at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import benchmark
from benchmark import paths
from benchmark.attacks.base import ATTACKS, AttackContext
from benchmark.attacks.presets import AttackCell
from benchmark.corruptions.presets import CorruptionPlan
from benchmark.datasets.base import DATASETS, load_split
from benchmark.defenses import DefendedModel, load_submission
from benchmark.device import pick_device, seed_everything
from benchmark.errors import CheckpointError, ConfigError
from benchmark.evaluation.adversarial import (
    build_cells,
    cell_block,
    craft_cell,
    craft_key,
    random_noise_predictions,
    run_cell,
)
from benchmark.evaluation.cache import AdversarialCache
from benchmark.evaluation.corruption import CorruptionRunner
from benchmark.evaluation.defended import (
    EOTModel,
    apply_votes,
    defense_block,
    inference_cost,
)
from benchmark.evaluation.memory import (
    AUTO_BATCHES,
    COMPACT,
    FRAGMENTED,
    HEADROOM,
    available_bytes,
    compact_allocator,
    compact_available,
    fitting_batch,
    gib,
    graph_bytes_per_image,
    plan_bytes,
)
from benchmark.evaluation.sanity import LARGE_EPS, oblivious_vs_adaptive, run_checks
from benchmark.metrics.adversarial import (
    correct_mask,
    worst_case_accuracy,
    worst_case_balanced_accuracy,
)
from benchmark.metrics.classification import compute_clean_metrics
from benchmark.models.base import MODELS
from benchmark.models.inference import predict
from benchmark.models.zoo import ModelZoo, model_id
from benchmark.results.naming import eps_label, result_path, run_suite
from benchmark.results.provenance import environment, git_commit, package_versions, utc_now
from benchmark.results.schema import SCHEMA_VERSION, write_result
from benchmark.testing.conformance import validate_submission
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
        seed: seed of the model to load, the subset, the attacks and the bootstrap CIs.
        batch_size: inference and attack batch size, or "auto": the largest of 256, 128, ...
            whose attack passes fit in the free memory (measured on a probe batch before any
            work; the resolved number is recorded). A number that would not fit is refused
            before any work, naming one that does (see ``benchmark/evaluation/memory.py``).
        device: "auto", "cpu" or "cuda[:N]".
        defense: submission id or folder of the defense to evaluate (None: undefended).
        defense_params: parameter overrides of the defense.
        threat_models: threat models the attacks run under with a defense ("oblivious",
            "adaptive"); without a defense attacks are white-box on the model.
        eot_samples: draws per forward pass of an adaptive attack on a randomized defense.
        adaptive_gradient: how the adaptive pass differentiates a preprocessing defense that
            declares itself differentiable: "exact" (autograd through it) or "bpda" (the
            identity, or its ``purify_approx``, on the backward pass; Athalye et al. 2018,
            Sec. 4.1). Unrolled solvers such as MDDA's TV iterations can give weak exact
            gradients; a "bpda" run is a second adaptive attack on the same entry, stored
            under the suite ``<preset>-bpda``. Non-differentiable defenses always use BPDA.
        attacks: the attack cells to run (empty: clean evaluation only).
        suite: name of the preset the cells come from ("custom" for a list).
        n_examples: evaluate a seeded random subset of this size (None: the whole split).
        sanity_attack: also run PGD-10 at eps 64/255 for the large-eps sanity check.
        corruptions: the corruption plan to run (None: no corruption evaluation).
        corruption_suite: name of the corruption preset ("custom" for a list).
        corruption_reference: zoo model id of the reference model for RFP and CE (optional).
    """

    dataset: str
    arch: str
    size: int | None = None
    split: str = "test"
    seed: int = 0
    batch_size: int | str = 256
    device: str = "auto"
    defense: str | None = None
    defense_params: dict[str, Any] = field(default_factory=dict)
    threat_models: list[str] = field(default_factory=lambda: ["oblivious"])
    eot_samples: int = 20
    adaptive_gradient: str = "exact"
    attacks: list[AttackCell] = field(default_factory=list)
    suite: str | None = None
    n_examples: int | None = None
    sanity_attack: bool = True
    corruptions: CorruptionPlan | None = None
    corruption_suite: str | None = None
    corruption_reference: str | None = None

    @property
    def threat_model(self) -> str:
        """ "clean" without attacks; "white-box" on an undefended model; else the defended
        threat models joined by "+"."""
        if not self.attacks:
            return "clean"
        return "+".join(self.threat_models) if self.defense else "white-box"


def select_subset(n: int, n_examples: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random subset of ``n_examples`` out of ``n`` (all if None)."""
    if n_examples is None or n_examples >= n:
        return torch.arange(n)
    if n_examples < 1:
        raise ConfigError(f"--n-examples must be >= 1, got {n_examples}")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:n_examples].sort().values


def _ensure_model(
    config: EvaluationConfig,
    size: int,
    zoo: ModelZoo,
    data_dir,
    download,
    train_if_missing: bool,
    train_config: TrainConfig | None,
) -> str:
    mid = model_id(config.arch, config.dataset, size, config.seed)
    if zoo.exists(mid):
        return mid
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
    return mid


@dataclass
class _Setup:
    """Everything an evaluation prepares before any work: loaded, validated and built."""

    submission: Any
    defense: Any
    defended: Any
    adaptive_model: Any
    model: Any
    entry: Any
    deployed: Any
    model_sha: str
    robust_sha: str | None
    scorer: torch.nn.Module
    full: Any
    split: Any
    indices: torch.Tensor
    size: int
    device: torch.device
    cells: list[AttackCell]
    passes: list[tuple[str, AttackCell, Any, torch.nn.Module]]
    context: AttackContext
    threat_models: list[str]
    mid: str
    bpda_always: bool = False


def _setup(
    config: EvaluationConfig,
    data_dir: Any,
    zoo: ModelZoo,
    cache: AdversarialCache,
    download: bool,
    train_if_missing: bool,
    train_config: TrainConfig | None,
    progress: bool | None,
) -> _Setup:
    """Load and validate the defense, the data, the model(s); build every attack pass."""
    bs = config.batch_size
    if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
        raise ConfigError(f"--batch-size must be a positive integer or auto, got {bs!r}")
    meta = DATASETS.get(config.dataset).meta
    MODELS.get(config.arch)
    submission = None
    if config.defense is not None:  # load and validate the plugin before any work
        bad = [t for t in config.threat_models if t not in ("oblivious", "adaptive")]
        if bad or not config.threat_models:
            raise ConfigError(
                f"--threat-model must be oblivious and/or adaptive, got {', '.join(bad)}; "
                "transfer and black_box come from the attacks (transfer, square, spsa, rays)"
            )
        submission = load_submission(config.defense)
        validate_submission(submission, **config.defense_params)
    _check_adaptive_gradient(config, submission)
    bpda_always = config.adaptive_gradient == "bpda"
    size = config.size or meta.default_size
    device = pick_device(config.device)
    # Data first: a missing or corrupt file is reported before any training or attack.
    full = load_split(config.dataset, config.split, size=size, data_dir=data_dir, download=download)
    indices = select_subset(len(full), config.n_examples, config.seed)
    split = full.subset(indices) if len(indices) < len(full) else full
    mid = _ensure_model(config, size, zoo, data_dir, download, train_if_missing, train_config)
    expect = {
        "dataset": config.dataset,
        "arch": config.arch,
        "image_size": size,
        "seed": config.seed,
    }
    model, entry = zoo.load(mid, device=device, expect=expect)
    model_sha = entry.card["checkpoint"]["sha256"]
    deployed = entry  # the model that answers queries: the base model or a robust one
    defense = defended = adaptive_model = None
    robust_sha = None
    scorer: torch.nn.Module = model
    if submission is not None and submission.meta.kind == "training":
        # A training-time defense is its robust model: oblivious attacks are crafted on the
        # standard model (shared through the cache), adaptive and black-box ones on it.
        defense = submission.build(seed=config.seed, **config.defense_params)
        robust, deployed = _load_robust(zoo, config, size, submission, defense, device, expect)
        robust_sha = deployed.card["checkpoint"]["sha256"]
        scorer = defended = adaptive_model = robust
    elif submission is not None:
        defense = submission.build(seed=config.seed, **config.defense_params)
        defended = DefendedModel(model, defense)
        scorer = defended
        if "adaptive" in config.threat_models:
            adaptive_model = EOTModel(
                DefendedModel(model, defense, adaptive=True, bpda_always=bpda_always),
                config.eot_samples,
            )
    cells = list(config.attacks)
    if cells and config.sanity_attack:
        cells.append(AttackCell.make("pgd", LARGE_EPS, steps=10))
    # (threat model, cell, attack, attacked model): undefended runs have one white-box pass; a
    # defense gets one pass per threat model. Every attack is built first: bad parameters
    # fail early.
    passes: list[tuple[str, AttackCell, Any, torch.nn.Module]] = []
    threat_models = config.threat_models if defense is not None else ["white-box"]
    for tm in threat_models:
        for cell in cells:
            label, attacked = _pass_target(
                tm, cell, model, defended, adaptive_model, "oblivious" in threat_models
            )
            if label is None:
                continue
            overrides = _adaptive_overrides(label, cell, defense, adaptive_model)
            (attack,) = build_cells(attacked, [cell], config.seed, **overrides)
            passes.append((label, cell, attack, attacked))
    attacks = [p[2] for p in passes]
    context = AttackContext(
        dataset=config.dataset,
        size=size,
        seed=config.seed,
        data_dir=data_dir,
        zoo_root=zoo.root,
        cache_root=cache.root,
        model_sha256=model_sha,
        progress=progress,
    )
    for attack in attacks:
        attack.validate(context)  # e.g. a missing transfer surrogate, before any work
    return _Setup(
        submission,
        defense,
        defended,
        adaptive_model,
        model,
        entry,
        deployed,
        model_sha,
        robust_sha,
        scorer,
        full,
        split,
        indices,
        size,
        device,
        cells,
        passes,
        context,
        threat_models,
        mid,
        bpda_always,
    )


def plan_batch_size(config: EvaluationConfig, st: _Setup, cache: AdversarialCache) -> Any:
    """``config`` with its batch size checked against the memory its attack passes need.

    The autograd graph per image of every distinct attacked module of a pass still to craft is
    measured on a probe batch of two test images (:mod:`benchmark.evaluation.memory`). "auto"
    resolves to the largest batch that fits; a number that fits only with glibc's mmap
    threshold fixed switches the allocator; one that does not fit raises
    :class:`ConfigError` naming one that does. Passes already in the cache need no memory."""
    auto = config.batch_size == "auto"
    free = available_bytes(st.device)
    modules: dict[int, torch.nn.Module] = {}
    for tm, _, attack, attacked in st.passes:
        if not auto:
            extra, _ = _pass_key(st, tm)
            key = craft_key(st.model_sha, st.split, st.indices, attack, config.batch_size, extra)
            if cache.has(key):
                continue
        modules.setdefault(id(attacked), attacked)
    if not modules or free is None:
        return replace(config, batch_size=AUTO_BATCHES[0]) if auto else config
    x, _ = next(iter(st.split.batches(2, device=st.device)))
    per_image = max(graph_bytes_per_image(m, x) for m in modules.values())
    n = len(st.split)
    factor = FRAGMENTED if st.device.type == "cpu" else COMPACT
    if auto:
        batch = fitting_batch(per_image, free, factor=factor)
        logger.info(
            "--batch-size auto: %d (attack graph %s per image, %s free)",
            batch,
            gib(per_image),
            gib(free),
        )
        return replace(config, batch_size=batch)
    batch = int(config.batch_size)
    need = plan_bytes(per_image, min(batch, n), factor)
    if need <= HEADROOM * free:
        return config
    compactable = factor == FRAGMENTED and compact_available()
    if compactable and plan_bytes(per_image, min(batch, n), COMPACT) <= HEADROOM * free:
        compact_allocator()
        logger.info(
            "memory is tight (attack graph %s per image at batch %d, %s free): large blocks "
            "are now mmap'd and returned on free (glibc mmap threshold fixed)",
            gib(per_image),
            min(batch, n),
            gib(free),
        )
        return config
    best = COMPACT if compactable else factor
    halvings = tuple(b for b in AUTO_BATCHES if b < min(batch, n))
    fit = fitting_batch(per_image, free, halvings or (1,), best)
    raise ConfigError(
        f"the attack passes need about {gib(need)} at --batch-size {batch} (the autograd "
        f"graph of {gib(per_image)} per image) and {gib(free)} of memory is free; pass "
        f"--batch-size {fit} or --batch-size auto"
    )


def _pass_key(st: _Setup, tm: str) -> tuple[dict[str, Any] | None, AttackContext]:
    """The cache-key extras and the attack context of a pass of threat model ``tm``."""
    on_defense = tm in ("adaptive", "black_box")
    extra = (
        _key_extra(tm, st.defense, st.adaptive_model, st.robust_sha, st.bpda_always)
        if on_defense
        else None
    )
    # What an attack trains or caches in prepare() (GAP's generator) belongs to the model it
    # attacks: the defended pipeline gets its own identity, not the base model's.
    context = (
        replace(st.context, model_sha256=_combined_sha(st.model_sha, extra))
        if extra
        else st.context
    )
    return extra, context


def craft_pass(
    config: EvaluationConfig,
    index: int,
    *,
    data_dir: Any = None,
    zoo_root: Any = None,
    cache_root: Any = None,
) -> bool:
    """Craft (or find cached) the adversarial examples of attack pass ``index`` of an
    evaluation and store them in the cache: the unit of work an executor sends to a worker.
    Everything is rebuilt from ``config`` exactly as :func:`evaluate` builds it, so the
    examples and their cache key are the ones a local run computes. Returns whether they
    were already cached."""
    zoo, cache = ModelZoo(zoo_root), AdversarialCache(cache_root)
    st = _setup(config, data_dir, zoo, cache, False, False, None, False)
    tm, cell, attack, attacked = st.passes[index]
    extra, context = _pass_key(st, tm)
    seed_everything(config.seed)
    _, cached = craft_cell(
        attacked,
        st.split,
        cell,
        attack,
        indices=st.indices,
        model_sha256=st.model_sha,
        seed=config.seed,
        batch_size=config.batch_size,
        cache=cache,
        context=context,
        progress=False,
        key_extra=extra,
    )
    return cached


def evaluate(
    config: EvaluationConfig,
    *,
    data_dir: str | Path | None = None,
    zoo: ModelZoo | None = None,
    out_dir: str | Path | None = None,
    download: bool = False,
    train_if_missing: bool = False,
    train_config: TrainConfig | None = None,
    cache: AdversarialCache | None = None,
    progress: bool | None = None,
    executor: Any = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate a zoo model (behind ``config.defense`` if set) clean, under
    ``config.attacks`` and under ``config.corruptions``; write its results file.

    Args:
        config: what to evaluate.
        data_dir: data root (``--data-dir``/``$BENCH_DATA_DIR``).
        zoo: model zoo (default: ``ModelZoo()``).
        out_dir: results folder (``--out``/``$BENCH_RESULTS_DIR``, default ``./results``).
        download: let MedMNIST download a missing file.
        train_if_missing: train the model with ``train_config`` if the zoo lacks it.
        train_config: recipe used when training is needed (default: MedMNIST recipe).
        cache: adversarial-example cache (default: the per-user cache).
        progress: show progress bars (default: only on a terminal).
        executor: where attack passes are crafted (None: here, one after the other; a
            :class:`~benchmark.evaluation.executors.RayExecutor` fans them out to a Ray
            cluster first, and this process then finds them in the shared cache).

    Returns:
        The result document and the path it was written to.
    """
    git = git_commit()  # the code that runs is the code checked out now
    zoo = zoo or ModelZoo()
    cache = cache or AdversarialCache()
    if executor is not None and not cache.enabled:
        raise ConfigError("an executor hands attack work over through the cache: enable it")
    st = _setup(config, data_dir, zoo, cache, download, train_if_missing, train_config, progress)
    config = plan_batch_size(config, st, cache)
    submission, defense, defended = st.submission, st.defense, st.defended
    model, entry, deployed, model_sha, robust_sha = (
        st.model,
        st.entry,
        st.deployed,
        st.model_sha,
        st.robust_sha,
    )
    scorer, split, indices, size, device = st.scorer, st.split, st.indices, st.size, st.device
    cells, passes, threat_models, mid = st.cells, st.passes, st.threat_models, st.mid
    full = st.full
    meta = DATASETS.get(config.dataset).meta
    reference = None
    if config.corruptions is not None and config.corruption_reference:
        ref_model, ref_entry = zoo.load(
            config.corruption_reference,
            device=device,
            expect={"dataset": config.dataset, "image_size": size},
        )
        ref_sha = ref_entry.card["checkpoint"]["sha256"]
        reference = (config.corruption_reference, ref_model, ref_sha)
    if executor is not None and passes:  # crafts every attack pass elsewhere, into the cache
        executor.craft(
            _portable(config, st.device),
            len(passes),
            data_dir=paths.data_dir(data_dir),
            zoo=zoo,
            cache=cache,
        )
    seed_everything(config.seed)
    start = time.perf_counter()
    if defense is not None:
        defense.reseed(config.seed)
    clean = predict(scorer, split, batch_size=config.batch_size, seed=config.seed)
    clean, clean_votes = apply_votes(scorer, clean, split.labels)
    metrics: dict[str, Any] = {"clean": compute_clean_metrics(clean)}
    if clean_votes is not None:
        metrics["clean_votes"] = clean_votes
    if defense is not None:
        base_clean = predict(model, split, batch_size=config.batch_size, seed=config.seed)
        metrics["undefended_clean"] = compute_clean_metrics(base_clean)
    doc_attacks: list[dict[str, Any]] = []
    by_tm: dict[str, dict[str, Any]] = {}
    for tm, cell, attack, attacked in passes:
        # Query attacks on the defended pipeline (black_box) are summarised with the adaptive
        # pass (the white-box vs black-box check), transfer cells with the oblivious pass and,
        # since they are valid attacks on the deployed pipeline too, with the adaptive one.
        groups = _GROUPS.get(tm, (tm,))
        states = [
            by_tm.setdefault(g, {"runs": [], "summaries": [], "large": None})
            for g in groups
            if g == tm or g in threat_models
        ]
        extra, pass_context = _pass_key(st, tm)
        run = run_cell(
            attacked,
            split,
            cell,
            attack,
            indices=indices,
            model_sha256=model_sha,
            seed=config.seed,
            batch_size=config.batch_size,
            cache=cache,
            context=pass_context,
            progress=progress,
            score_model=scorer,
            key_extra=extra,
        )
        block = cell_block(run, clean)
        if defense is not None:
            block["threat_model"] = tm
        acc = block["metrics"]["robust_accuracy"]["value"]
        for state in states:
            if config.sanity_attack and cell is cells[-1]:
                state["large"] = acc
                block["sanity_only"] = True
            else:
                state["runs"].append(run)
                state["summaries"].append({**run.summary(), "accuracy": acc, "threat_model": tm})
        doc_attacks.append(block)
    primary = "adaptive" if "adaptive" in by_tm else next(iter(by_tm), "white-box")
    runs = by_tm.get(primary, {}).get("runs", [])
    worst = _worst_cases(clean, runs)
    noise = {}
    for eps in sorted({r.cell.eps for r in runs if r.attack.norm == "linf" and r.attack.bounded}):
        if defense is not None:
            defense.reseed(config.seed)
        noise_pred = random_noise_predictions(
            scorer, split, eps, seed=config.seed, batch_size=config.batch_size
        )
        noise[eps] = float(correct_mask(noise_pred).mean())
    state = by_tm.get(primary, {"summaries": [], "large": None})
    sanity = (
        run_checks(
            state["summaries"], noise, state["large"], len(split), defended=defense is not None
        )
        if cells
        else []
    )
    defense_doc = None
    if defense is not None and defended is not None:
        defense_doc = defense_block(
            submission,
            defense,
            config.threat_models,
            config.eot_samples,
            st.bpda_always,
        )
        defense_doc["cost"] = inference_cost(model, defended, split, config.batch_size, config.seed)
        defense_doc["sanity_checks_threat_model"] = primary
        if cells:
            sanity.append(
                oblivious_vs_adaptive(
                    by_tm.get("oblivious", {}).get("summaries", []),
                    by_tm.get("adaptive", {}).get("summaries", []),
                    training=submission is not None and submission.meta.kind == "training",
                )
            )
    corruption_block = None
    if config.corruptions is not None:
        if defense is not None:  # corrupted images go through the deployed pipeline
            defense.reseed(config.seed)
        corruption_block = CorruptionRunner(
            scorer,
            split,
            indices,
            model_sha256=_scorer_key(model_sha, robust_sha, defense),
            reference=reference,
            seed=config.seed,
            batch_size=config.batch_size,
            cache=AdversarialCache(cache.root / "corruptions", enabled=cache.enabled),
            progress=progress,
        ).run(config.corruptions, clean)
    seconds = time.perf_counter() - start
    created = utc_now()
    resolved = asdict(config)
    resolved.pop("size")
    resolved.pop("corruptions")
    if submission is not None:  # the id, not the folder it was loaded from
        resolved["defense"] = submission.id
    resolved.update(
        image_size=size,
        model_id=mid,
        device=str(device),
        threat_model=config.threat_model,
        attacks=[c.cell_id for c in config.attacks],
    )
    card = deployed.card
    data = {
        "dataset": config.dataset,
        "split": config.split,
        "n": len(split),
        "n_split": len(full),
        "sha256": full.sha256,
        "source": Path(full.source_path).name,
        "license": meta.license,
    }
    if len(indices) < len(full):
        data["subset"] = {
            "n_examples": len(indices),
            "seed": config.seed,
            "indices": indices.tolist(),
        }
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "benchmark_version": benchmark.__version__,
        "created_at": created,
        "run_id": f"{run_suite(resolved)}_{created.replace(':', '').replace('-', '').lower()}",
        "git": git,
        "config": resolved,
        "seed": config.seed,
        "environment": environment(device),
        "versions": package_versions(),
        "data": data,
        "model": {
            "model_id": card["model_id"],
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
        "timing": {"seconds": seconds, "cache_hits": cache.hits, "cache_misses": cache.misses},
    }
    if cells:
        doc["attacks"] = doc_attacks
        doc["worst_case"] = worst
        doc["random_noise"] = [
            {"eps": e, "eps_label": eps_label(e), "accuracy": a} for e, a in noise.items()
        ]
        doc["sanity_checks"] = sanity
        doc["flags"] = sorted({c["flag"] for c in sanity if c["flag"]})
        if defense_doc is not None:
            doc["worst_case_threat_model"] = primary
            doc["worst_case_by_threat_model"] = {
                tm: _worst_cases(clean, st["runs"]) for tm, st in by_tm.items()
            }
            if len(by_tm) > 1:  # the best known attack per image, whatever its threat model
                every = list({id(r): r for st in by_tm.values() for r in st["runs"]}.values())
                doc["worst_case_by_threat_model"]["any"] = _worst_cases(clean, every)
    if defense_doc is not None:
        doc["defense"] = defense_doc
    if deployed is not entry:  # a robust model: the standard one crafted the oblivious attacks
        doc["base_model"] = {"model_id": mid, "checkpoint_sha256": model_sha}
    if corruption_block is not None:
        doc["corruptions"] = corruption_block
    out = paths.results_dir(out_dir)
    target = result_path(out, doc)
    n = 1
    while target.exists():  # two runs in the same second: keep both, never overwrite
        n += 1
        target = target.with_name(f"{doc['run_id']}-{n}.json")
    write_result(doc, target)
    logger.info("wrote %s", target)
    return doc, target


_QUERY_KNOWLEDGE = ("score-based", "decision-based")
# Summary groups a cell's label belongs to (a group is used when its pass runs).
_GROUPS = {"black_box": ("adaptive",), "transfer": ("oblivious", "adaptive")}


def _pass_target(
    tm: str,
    cell: AttackCell,
    model: torch.nn.Module,
    defended: torch.nn.Module | None,
    adaptive_model: torch.nn.Module | None,
    oblivious_pass: bool = True,
) -> tuple[str | None, torch.nn.Module]:
    """The threat-model label of ``cell`` in pass ``tm`` and the model its attack sees.

    Oblivious pass: every attack is crafted on the base model (a transfer attack on its
    surrogate, labelled ``transfer``). Adaptive pass: gradient attacks see the EOT/BPDA
    pipeline; query attacks (Square, SPSA, RayS) query the deployed defended pipeline itself
    and are labelled ``black_box``; transfer attacks do not depend on the defense, so they run
    here only when there is no oblivious pass (``label None``: skip the cell).
    """
    knowledge = ATTACKS.get(cell.attack).meta.knowledge
    if tm != "adaptive":
        return ("transfer" if knowledge == "transfer" and tm != "white-box" else tm), model
    if knowledge == "transfer":
        return (None if oblivious_pass else "transfer"), model
    if knowledge in _QUERY_KNOWLEDGE:
        assert defended is not None
        return "black_box", defended
    assert adaptive_model is not None
    return "adaptive", adaptive_model


def _adaptive_overrides(
    label: str | None, cell: AttackCell, defense: Any, adaptive_model: Any
) -> dict[str, Any]:
    """Attack parameters that change on the adaptive pass: AutoAttack's ``rand`` version
    (APGD-CE/DLR with EOT, Croce & Hein 2020 Sec. 5) against a randomized defense. APGD
    draws once per step when the attacked model already averages draws (``--eot-samples`` >
    1, or a voting defense's smoothed classifier), else the paper's 20 times."""
    if label == "adaptive" and cell.attack == "autoattack" and defense.meta.randomized:
        return {"version": "rand", "eot_iter": 1 if adaptive_model.averages else 20}
    return {}


def _key_extra(
    tm: str,
    defense: Any,
    adaptive_model: Any,
    robust_sha: str | None = None,
    bpda_always: bool = False,
) -> dict[str, Any]:
    """What besides the attack determines examples crafted on the defended pipeline (for a
    training-time defense: its robust model's checkpoint; for a forced-BPDA adaptive pass,
    that gradient)."""
    extra: dict[str, Any] = {"defense": defense.config()}
    if tm == "adaptive":
        extra["eot"] = getattr(adaptive_model, "samples", 1)
        if bpda_always:
            extra["gradient"] = "bpda"
    if robust_sha is not None:
        extra["robust_model"] = robust_sha
    return extra


def _check_adaptive_gradient(config: EvaluationConfig, submission: Any) -> None:
    """A forced-BPDA adaptive pass needs a preprocessing defense and the adaptive threat
    model; refused before any work otherwise."""
    if config.adaptive_gradient not in ("exact", "bpda"):
        raise ConfigError(
            f"--adaptive-gradient must be exact or bpda, got {config.adaptive_gradient!r}"
        )
    if config.adaptive_gradient == "exact":
        return
    if submission is None or submission.meta.kind != "preprocessing":
        raise ConfigError(
            "--adaptive-gradient bpda applies to a preprocessing defense (--defense ID): "
            "wrappers and trained models have no purifier to approximate"
        )
    if "adaptive" not in config.threat_models:
        raise ConfigError("--adaptive-gradient bpda needs --threat-model adaptive")


def _portable(config: EvaluationConfig, device: torch.device) -> EvaluationConfig:
    """The configuration as a worker must see it: the driver's resolved device (a worker
    without it fails loudly instead of crafting elsewhere) and an absolute defense folder."""
    defense = config.defense
    if defense is not None and Path(defense).is_dir():
        defense = str(Path(defense).resolve())
    return replace(config, device=str(device), defense=defense)


def _combined_sha(model_sha: str, extra: dict[str, Any]) -> str:
    """A stable identity for the base checkpoint combined with what else defines a model."""
    blob = json.dumps({"model": model_sha, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _scorer_key(model_sha: str, robust_sha: str | None, defense: Any) -> str:
    """Cache identity of what scores images: the model's checkpoint, a robust model's, or the
    base checkpoint combined with the defense's configuration."""
    if robust_sha is not None:
        return robust_sha
    if defense is None:
        return model_sha
    return _combined_sha(model_sha, {"defense": defense.config()})


def _load_robust(
    zoo: ModelZoo,
    config: EvaluationConfig,
    size: int,
    submission: Any,
    defense: Any,
    device: torch.device,
    expect: dict[str, Any],
) -> tuple[torch.nn.Module, Any]:
    """The zoo's robust model of a training-time defense; refused unless its card records
    this submission (id and sha256) and these parameters."""
    from benchmark.training.trainer import defense_tag

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
        **expect,
        "defense.id": submission.id,
        "defense.sha256": submission.sha256,
        "defense.params": dict(sorted(defense.params.items())),
    }
    return zoo.load(rid, device=device, expect=robust_expect)


def _worst_cases(clean, runs) -> list[dict[str, Any]]:
    """Per budget (norm, eps): accuracy on images robust to every attack of that norm at
    that eps or below (an example inside a smaller ball is inside the larger one too)."""
    bounded = [r for r in runs if r.attack.bounded]
    out = []
    for norm, eps in sorted({(r.attack.norm, r.cell.eps) for r in bounded}):
        members = [r for r in bounded if r.attack.norm == norm and r.cell.eps <= eps + 1e-12]
        preds = [m.pred for m in members]
        out.append(
            {
                "norm": norm,
                "eps": eps,
                "eps_label": eps_label(eps),
                "attacks": [m.cell.cell_id for m in members],
                "robust_accuracy": worst_case_accuracy(clean, preds),
                "robust_balanced_accuracy": worst_case_balanced_accuracy(clean, preds),
            }
        )
    return out


__all__ = ["EvaluationConfig", "evaluate", "result_path", "select_subset"]
