"""The protocol campaign: every entry of the L-inf boards, trained if missing and evaluated under
the protocol of its track, in one process, in priority order, within a time budget.

It exists for a lent GPU (one prepared script per call, ``docs/protocol.md``): the machine
returns few, small files, so the zoo is rebuilt there with the published recipes
(:mod:`benchmark.training.recipes`) and the results files return packed into one archive
that is rewritten after every job, with the cards of the models trained (and, with
``--models-out``, as many of the models as fit, in parts: :mod:`campaign_log`).
It is resumable: a job whose results file is already under
``--out``, for the same models (ids and checkpoint sha256s), is skipped; a trained model is
found in ``--zoo`` (one of another recipe under the same id is refused by name); the
adversarial cache keeps finished batches. Each job's wall time, models, device and outcome go
into ``campaign.json`` beside the archive (the protocol cost figure,
``benchmarks/protocol_cost.py``, reads the results themselves).

Usage::

    python benchmarks/protocol_campaign.py --out OUT [--zoo Z] [--cache C] [--data-dir D]
        [--datasets breastmnist,pneumoniamnist,retinamnist] [--seeds 0,1,2]
        [--tracks deterministic,adaptive,transfer] [--arch resnet18] [--cpu-isa avx2]
        [--only JOB,...]
        [--budget-min 9] [--plan] [--train-only] [--models-out DIR [--bring-mib 60]
        [--part-mib 15]]

The order: the deterministic track of seed 0 per dataset (undefended first), the adaptive
track, the transfer matrices, then the deterministic track of the other seeds. A transfer job
builds the matrix (``mrb_transfer_v1``, ``bench transfer``) of every entry evaluated under
``--out`` when it runs, written to ``<out>/<dataset>/transfer/`` (entries whose model could
not be trained are left out, listed); in this order that is seed 0's entries, but a transfer
job that runs after the other seeds (a resumed campaign whose transfer job had failed) takes
their entries too, at about nine times the cells.

``--seeds 3,4,5`` trains and evaluates a robust recipe's spare seeds
(:data:`benchmark.training.recipes.SPARE_SEEDS`), standard models included; on the CPU with
``--cpu-isa avx2`` (started with the variables it names) so that anyone can retrain them.
``--plan`` prints the jobs in order, with the models each trains, and exits (nothing runs).
``--train-only`` trains the jobs' models and evaluates nothing (a zoo batch: e.g. ``--arch
resnet50 --only pneumoniamnist__undefended,...``). The results archive holds the card of every
model the campaign trained (``cards/<id>.json``: recipe, validation curve, device, checkpoint
sha256). With ``--models-out``, the trained models themselves (cards and weights, in training
order, as many as fit in ``--bring-mib``) are exported there after every training job as one
archive in parts of at most ``--part-mib`` (the device machine returns 8 files of 16 MiB);
``bench zoo import DIR/models.tar.gz.parts.json`` installs them here after checking every
part's, the archive's and each checkpoint's sha256.
On the device machine the data and the missing packages travel with the working tree
(``make device-prep``, see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from campaign_log import CampaignLog, archive_results, bring_back_now

from benchmark.results.protocols import CURRENT_PROTOCOL, track_protocol
from benchmark.training.recipes import (
    ROBUST_DEFENSES,
    SEEDS,
    SENSITIVITY_ENTRIES,
    STANDARD_EPOCHS,
)

#: Training-time defenses on the boards, with their published recipes
#: (:mod:`benchmark.training.recipes`: PGD-7 at the training eps, 12 fine-tune epochs); the
#: recipes' sensitivity entries (:data:`~benchmark.training.recipes.SENSITIVITY_ENTRIES`)
#: follow them.
ROBUST: tuple[str, ...] = ROBUST_DEFENSES
#: The adaptive-track partner of the current protocol.
ADAPTIVE_PROTOCOL = track_protocol(CURRENT_PROTOCOL, "preprocessing")
#: Adaptive-track defenses on the boards, cheapest first; MedRDF's votes at n = 1000.
ADAPTIVE: list[tuple[str, dict[str, Any]]] = [
    ("bit_depth_reduction", {}),
    ("median_filter", {}),
    ("gaussian_smoothing", {}),
    ("jpeg", {}),
    ("random_resize_pad", {}),
    ("mdda", {}),
    ("medrdf", {"n": 1000}),
]
ADAPTIVE_DATASETS = ("pneumoniamnist", "retinamnist")
#: The protocol name of a transfer-matrix job (one per dataset, after its entries' runs).
TRANSFER = "mrb_transfer_v1"


@dataclass
class Job:
    """One evaluation (and the training it needs)."""

    dataset: str
    protocol: str
    defense: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    arch: str = "resnet18"
    seed: int = 0

    @property
    def name(self) -> str:
        if self.protocol == TRANSFER:
            return f"{self.dataset}__transfer"
        tail = self.defense or "undefended"
        if self.params:
            tail += "_" + "_".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.dataset}__{tail}" + (f"__s{self.seed}" if self.seed else "")

    @functools.cached_property
    def train_configs(self) -> list[Any]:
        """The recipes of the models this job evaluates, the standard model first (a robust
        model is fine-tuned from it); none for a transfer job. Computed once per job (it
        loads the defense's submission)."""
        from benchmark.defenses import load_submission
        from benchmark.training.recipes import robust_config, standard_config

        if self.protocol == TRANSFER:
            return []
        out = [standard_config(self.dataset, self.arch, self.seed)]
        if self.defense is not None and load_submission(self.defense).meta.kind == "training":
            out.append(robust_config(self.dataset, self.defense, self.arch, self.seed, self.params))
        return out

    def defense_params(self) -> dict[str, Any]:
        """The parameters the evaluated defense runs with: a training defense's recipe
        parameters (they name its model), else the job's own."""
        configs = self.train_configs
        return dict(configs[-1].defense_params) if len(configs) == 2 else dict(self.params)


def jobs(
    datasets: list[str],
    tracks: list[str],
    arch: str = "resnet18",
    seeds: tuple[int, ...] = SEEDS,
) -> list[Job]:
    """The campaign's jobs in priority order: per dataset the deterministic track of seed 0
    (undefended first), then the adaptive track of the datasets that have its entries, the
    transfer matrices, and last the deterministic track of the other seeds. Every seed's
    protocol run is a board row of its own, ranked by its checkpoint like any other; the
    seeds' spread shows beside each row and on the entry pages."""

    def deterministic(seed: int) -> list[Job]:
        out = []
        for ds in datasets:
            out.append(Job(ds, CURRENT_PROTOCOL.id, arch=arch, seed=seed))
            for d in ROBUST:
                out.append(Job(ds, CURRENT_PROTOCOL.id, d, {}, arch, seed))
            for d, p in SENSITIVITY_ENTRIES.get(ds, ()):
                out.append(Job(ds, CURRENT_PROTOCOL.id, d, dict(p), arch, seed))
        return out

    out: list[Job] = []
    if "deterministic" in tracks and 0 in seeds:
        out += deterministic(0)
    if "adaptive" in tracks:
        for d, p in ADAPTIVE:
            for ds in datasets:
                if ds in ADAPTIVE_DATASETS:
                    out.append(Job(ds, ADAPTIVE_PROTOCOL.id, d, p, arch))
    if "transfer" in tracks:
        out += [Job(ds, TRANSFER, arch=arch) for ds in datasets]
    if "deterministic" in tracks:
        for seed in seeds:
            if seed != 0:
                out += deterministic(seed)
    return out


def _ensure_models(
    job: Job,
    zoo: Any,
    data_dir: Path,
    log: list[dict[str, Any]],
    on_trained: Callable[[str], None] | None = None,
) -> None:
    """Train the models the job evaluates with their published recipes where the zoo lacks
    them (``on_trained(id)`` as soon as each is in the zoo); a zoo model of another recipe
    under the same id is refused, not evaluated."""
    from benchmark.errors import ConfigError
    from benchmark.training import train_model
    from benchmark.training.recipes import (
        card_recipe_mismatches,
        format_mismatches,
        recipe_model_id,
    )

    for config in job.train_configs:
        mid = recipe_model_id(config)
        if zoo.exists(mid):
            # The same test as the zoo page and the site's badge: the parameters in force.
            found = card_recipe_mismatches(zoo.entry(mid).card)
            diff = ["no published recipe covers it"] if found is None else format_mismatches(found)
            if diff:
                raise ConfigError(
                    f"zoo model {mid} was trained with another recipe ({'; '.join(diff)}): "
                    "remove it or run the campaign with another --zoo"
                )
            continue
        start = time.perf_counter()
        train_model(config, data_dir=data_dir, zoo=zoo, progress=False)
        log.append({"train": mid, "seconds": round(time.perf_counter() - start, 1)})
        if on_trained is not None:
            on_trained(mid)


def run_job(
    job: Job,
    *,
    out: Path,
    zoo: Any,
    cache: Any,
    data_dir: Path,
    train_only: bool = False,
    on_trained: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train what the job needs and evaluate it under its protocol (``train_only``: train
    only, status ``trained``); its log record."""
    from benchmark.evaluation import EvaluationConfig, evaluate

    record: dict[str, Any] = {"job": job.name, **asdict(job), "trained": []}
    record["models"] = _models(job)
    start = time.perf_counter()
    if job.protocol == TRANSFER:
        return _transfer_job(job, record, out=out, zoo=zoo, cache=cache, data_dir=data_dir)
    try:
        _ensure_models(job, zoo, data_dir, record["trained"], on_trained)
        record["checkpoints"] = {m: _checkpoint(zoo, m) for m in record["models"]}
        if train_only:
            record.update(status="trained", seconds=round(time.perf_counter() - start, 1))
            return record
        config = EvaluationConfig.from_options(
            dataset=job.dataset,
            arch=job.arch,
            size=job.train_configs[0].size,
            protocol=job.protocol,
            seed=job.seed,
            defense=job.defense,
            defense_params=[f"{k}={v}" for k, v in sorted(job.defense_params().items())],
            batch_size="auto",
        )
        doc, path = evaluate(
            config, data_dir=data_dir, zoo=zoo, out_dir=out, cache=cache, progress=False
        )
        record.update(status="done", result=str(path.relative_to(out)))
        record["device"] = doc["environment"].get("device_name", doc["environment"]["device"])
    except Exception as exc:  # one failed job must not stop the campaign; it is logged
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        record["traceback"] = traceback.format_exc(limit=8)
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def _transfer_job(
    job: Job, record: dict[str, Any], *, out: Path, zoo: Any, cache: Any, data_dir: Path
) -> dict[str, Any]:
    """The transfer matrix of ``job.dataset`` over the entries evaluated under ``out``."""
    from benchmark.evaluation.transfer_matrix import transfer_matrix, write_transfer
    from benchmark.results.transfer import MRB_TRANSFER_V1, transfer_file

    start = time.perf_counter()
    try:
        doc = transfer_matrix(
            job.dataset,
            results_root=out,
            skip_missing=True,
            zoo=zoo.root,
            data_dir=data_dir,
            cache_dir=cache.root,
        )
        path = write_transfer(
            doc, transfer_file(out, job.dataset, MRB_TRANSFER_V1, doc["created_at"])
        )
        record.update(status="done", result=str(path.relative_to(out)))
        record["device"] = doc["environment"].get("device_name", doc["environment"]["device"])
    except Exception as exc:  # logged like any other job
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        record["traceback"] = traceback.format_exc(limit=8)
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def _models(job: Job) -> list[str]:
    """The zoo ids of the models ``job`` evaluates (by its recipes)."""
    from benchmark.training.recipes import recipe_model_id

    return [recipe_model_id(c) for c in job.train_configs]


def _checkpoint(zoo: Any, mid: str) -> str | None:
    """The checkpoint sha256 the zoo's card of ``mid`` records (None: not in the zoo)."""
    if not zoo.exists(mid):
        return None
    return str(zoo.entry(mid).card["checkpoint"]["sha256"])


def _done(out: Path, todo: list[Job], zoo: Any | None = None) -> set[str]:
    """Names of the jobs of ``todo`` whose results file is already under ``out`` (from
    campaign.json) for the same models: the record's model ids are the job's, and where
    ``zoo`` holds them, their checkpoint sha256s are the record's. A record of an older
    campaign (no model ids), of other weights or of another protocol (an older version) is
    not done: the job runs again."""
    log = out / "campaign.json"
    if not log.is_file():
        return set()
    records = json.loads(log.read_text()).get("jobs", [])
    models = {j.name: _models(j) for j in todo}
    protocols = {j.name: j.protocol for j in todo}
    done = set()
    for r in records:
        name = r.get("job")
        if r.get("status") != "done" or not (out / r["result"]).is_file() or name not in models:
            continue
        if r.get("models") != models[name] or r.get("protocol") != protocols[name]:
            continue
        if zoo is not None and any(
            _checkpoint(zoo, m) not in (None, sha) for m, sha in r.get("checkpoints", {}).items()
        ):
            continue
        done.add(name)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder (and archive)")
    parser.add_argument("--zoo", type=Path, default=None, help="model zoo (else the default)")
    parser.add_argument("--cache", type=Path, default=None, help="adversarial cache")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="breastmnist,pneumoniamnist,retinamnist")
    parser.add_argument("--tracks", default="deterministic,adaptive,transfer")
    parser.add_argument("--budget-min", type=float, default=9.0, help="start no job after this")
    parser.add_argument("--arch", default="resnet18", help="architecture (smoke runs: tiny_cnn)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="recipe seeds")
    parser.add_argument(
        "--cpu-isa",
        default="native",
        help="CPU kernels to train with (native, avx2, default; bench train --cpu-isa); start "
        "the process with the variables it names",
    )
    parser.add_argument("--only", default="", help="comma list of job names to run (else all)")
    parser.add_argument("--plan", action="store_true", help="print the jobs and exit")
    parser.add_argument(
        "--train-only", action="store_true", help="train the jobs' models, evaluate nothing"
    )
    parser.add_argument(
        "--models-out", type=Path, default=None, help="folder for the trained models brought back"
    )
    parser.add_argument(
        "--bring-mib",
        type=float,
        default=60.0,
        help="with --models-out: at most this many MiB of trained models (cards + weights)",
    )
    parser.add_argument("--part-mib", type=float, default=15.0, help="largest file brought back")
    args = parser.parse_args(argv)
    if args.part_mib <= 0 or args.bring_mib < 0:
        parser.error("--part-mib must be above 0 and --bring-mib at least 0")
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = sorted(set(datasets) - set(STANDARD_EPOCHS))
    if unknown:
        parser.error(f"no recipe for {', '.join(unknown)}; known: {', '.join(STANDARD_EPOCHS)}")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s)
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    todo = jobs(datasets, [t for t in args.tracks.split(",") if t], args.arch, seeds)
    if args.only:
        todo = [j for j in todo if j.name in args.only.split(",")]
    if args.train_only:
        todo = [j for j in todo if j.protocol != TRANSFER]
    if args.plan:
        done = _done(args.out, todo)
        for i, job in enumerate(todo, 1):
            models = ", ".join(_models(job))
            mark = "  (done)" if job.name in done else ""
            print(
                f"{i:3d} {job.protocol:22s} {job.name}{mark}" + (f"  [{models}]" if models else "")
            )
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from benchmark.device import pin_cpu_isa
    from benchmark.errors import ConfigError

    try:  # before any work: the kernels are chosen when the process starts
        pin_cpu_isa(args.cpu_isa)
    except ConfigError as exc:
        parser.error(str(exc))
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.models.zoo import ModelZoo

    zoo = ModelZoo(args.zoo) if args.zoo else ModelZoo()
    cache = AdversarialCache(args.cache) if args.cache else AdversarialCache()
    args.out.mkdir(parents=True, exist_ok=True)
    done = _done(args.out, todo, zoo)
    log = CampaignLog(args.out)
    start = time.perf_counter()
    for job in todo:
        if job.name in done:
            continue
        if time.perf_counter() - start > 60 * args.budget_min:
            print(f"budget of {args.budget_min} min spent: stopped before {job.name}")
            break
        record = run_job(
            job,
            out=args.out,
            zoo=zoo,
            cache=cache,
            data_dir=args.data_dir,
            train_only=args.train_only,
            on_trained=log.note_trained,
        )
        if args.train_only and record["status"] == "trained" and not record["trained"]:
            print(f"present {job.name}: its models are in the zoo")
            continue
        print(f"{record['status']:6s} {job.name} {record['seconds']} s")
        log.jobs.append(record)
        log.save()  # a killed call keeps the finished jobs
        archive_results(args.out, zoo, log.trained)
        if args.models_out is not None and record["trained"]:
            bring_back_now(log, zoo, args)
            log.save()
    archive_results(args.out, zoo, log.trained)


if __name__ == "__main__":
    main()
