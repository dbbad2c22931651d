"""Thin ``bench`` commands: parse options, call the library, render the answer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from benchmark.cli.app import app
from benchmark.errors import ConfigError, ResultsError, UnknownNameError
from benchmark.params import parse_params
from benchmark.registry import ALL_REGISTRIES, first_doc_line, unknown_name_message

KINDS = (
    "datasets",
    "models",
    "attacks",
    "presets",
    "corruptions",
    "corruption_presets",
    "defenses",
    "metrics",
)

DATA_DIR_HELP = "Data root (else $BENCH_DATA_DIR, else medmnist's ~/.medmnist)."
ZOO_HELP = "Model zoo folder (else $BENCH_ZOO_DIR, else ~/.cache/medrobustbench/zoo)."


def _load_components() -> None:
    import benchmark.attacks
    import benchmark.attacks.presets
    import benchmark.corruptions
    import benchmark.datasets
    import benchmark.defenses
    import benchmark.metrics
    import benchmark.models  # noqa: F401


def _registry(kind: str):
    _load_components()
    singular = kind[:-1] if kind.endswith("s") else kind
    if singular not in ALL_REGISTRIES:
        raise ConfigError(f"unknown kind '{kind}'; use one of {', '.join(KINDS)}")
    return ALL_REGISTRIES[singular]


def _meta_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj.meta)


def _list_defenses(pattern: str, as_json: bool) -> None:
    """Registered defenses and the submissions under ``$BENCH_SUBMISSIONS_DIR`` (or
    ``./submissions``); a submission that does not load is listed with the reason."""
    from fnmatch import fnmatchcase

    from benchmark.defenses import SubmissionError, list_submissions, load_submission

    ids = sorted(set(list_submissions()) | set(ALL_REGISTRIES["defense"].list()))
    rows: dict[str, dict[str, Any]] = {}
    for sid in (i for i in ids if fnmatchcase(i, pattern)):
        try:
            rows[sid] = load_submission(sid).record()
        except SubmissionError as exc:
            rows[sid] = {"id": sid, "error": str(exc)}
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no defenses match '{pattern}' (submissions folder: see BENCH_SUBMISSIONS_DIR)")
        return
    width = max(len(n) for n in rows)
    for sid, r in rows.items():
        text = f"INVALID: {r['error']}" if "error" in r else f"{r['kind']:<13} {r['name']}"
        typer.echo(f"{sid:<{width}}  {text}")


@app.command("list")
def list_cmd(
    kind: str = typer.Argument(
        ..., help="datasets | models | attacks | presets | corruptions | defenses | metrics"
    ),
    pattern: str = typer.Argument("*", help="Wildcard filter, e.g. 'resnet*'."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List registered components of one kind (defenses: the submissions folder too)."""
    reg = _registry(kind)
    if reg is ALL_REGISTRIES["defense"]:
        _list_defenses(pattern, as_json)
        return
    items = reg.items(pattern)
    if as_json:
        typer.echo(json.dumps({n: _meta_dict(o) for n, o in items}, indent=2, default=str))
        return
    if not items:
        typer.echo(f"no {kind} match '{pattern}'")
        return
    width = max(len(n) for n, _ in items)
    for name, obj in items:
        typer.echo(f"{name:<{width}}  {first_doc_line(obj)}")


@app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="A registered name (dataset, model, attack, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show the metadata of a registered component."""
    _load_components()
    found = [(kind, reg.get(name)) for kind, reg in ALL_REGISTRIES.items() if name in reg]
    if not found:
        names = sorted({n for reg in ALL_REGISTRIES.values() for n in reg.list()})
        raise UnknownNameError(
            unknown_name_message(
                "name", name, names, "run `bench list <kind>` to see what is registered"
            )
        )
    out = {kind: _meta_dict(obj) for kind, obj in found}
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    for kind, meta in out.items():
        typer.echo(f"{name} ({kind})")
        for key, value in meta.items():
            typer.echo(f"  {key}: {value}")


@app.command("train")
def train_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    arch: str = typer.Option(..., "--arch", "--model", "-m", help="Registered model id."),
    size: int | None = typer.Option(None, help="Image size (default: the dataset's)."),
    epochs: int = typer.Option(100, help="Epochs (MedMNIST v2 recipe: 100)."),
    batch_size: int = typer.Option(128, help="Minibatch size."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    seed: int = typer.Option(0, help="Seed of initialisation and data order."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download", help="Download a missing MedMNIST file."),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    defense: str | None = typer.Option(
        None, help="Training-time defense submission (pgd_at, mpadvt, maadvt, trades, mart)."
    ),
    defense_param: list[str] = typer.Option(
        [], help="Override a defense parameter: name=value (e.g. steps=3 on a CPU)."
    ),
    select: str = typer.Option(
        "auto", help="Model selection on the validation split: auto | auc | robust."
    ),
    select_eps: str = typer.Option("4/255", help="Eps of the PGD used by --select robust."),
    select_steps: int = typer.Option(4, help="Steps of the PGD used by --select robust."),
    init_from: str | None = typer.Option(
        None, help="Zoo id whose weights start the training (adversarial fine-tuning)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Start afresh instead of resuming an interrupted run."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the model card as JSON."),
) -> None:
    """Train a model (MedMNIST v2 recipe, or a training-time defense) into the model zoo.

    An interrupted run resumes at its last finished epoch when started again with the same
    options (its state is kept in the zoo's .partial/ folder); --fresh starts over."""
    from benchmark.attacks.presets import parse_eps
    from benchmark.models.zoo import ModelZoo
    from benchmark.training import TrainConfig, train_model

    config = TrainConfig(
        dataset=dataset,
        arch=arch,
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        defense=defense,
        defense_params=parse_params(defense_param),
        selection=select,
        select_eps=parse_eps(select_eps),
        select_steps=select_steps,
        init_from=init_from,
    )
    entry = train_model(
        config, data_dir=data_dir, download=download, zoo=ModelZoo(zoo), resume=not fresh
    )
    card = entry.card
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    test = card["metrics"]["test"]
    typer.echo(f"model    {card['model_id']}  ({entry.path})")
    typer.echo(
        f"epochs   {card['epochs']} (selected epoch {card['best_epoch']}: "
        f"{card['recipe']['selection']}), {card['training_time_seconds'] / 60:.1f} min"
    )
    if card.get("defense"):
        params = ", ".join(f"{k}={v}" for k, v in card["defense"]["params"].items())
        typer.echo(f"defense  {card['defense']['id']} ({params})")
    typer.echo(f"test ACC {_fmt(test['acc'])}")
    typer.echo(f"test AUC {_fmt(test['auc'])}")
    typer.echo(f"sha256   {card['checkpoint']['sha256']}")


def _fmt(metric: dict[str, Any]) -> str:
    if metric.get("value") is None:
        return f"n/a ({metric.get('reason', 'undefined')})"
    lo, hi = metric["ci95"]
    return f"{metric['value']:.4f}  95% CI [{lo:.4f}, {hi:.4f}]  n={metric['n']}"


@app.command("evaluate")
def evaluate_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    arch: str = typer.Option(..., "--model", "--arch", "-m", help="Registered model id."),
    attacks: str | None = typer.Option(
        None, help="A preset (bench list presets) or a comma list of attacks (fgsm,pgd)."
    ),
    eps: list[str] = typer.Option([], help="eps for an attack list, e.g. 2/255,8/255."),
    attack_param: list[str] = typer.Option(
        [], help="Override an attack parameter: pgd.steps=20 (or steps=20 for all)."
    ),
    defense: str | None = typer.Option(
        None, help="Defense to evaluate: a submission id (submissions/<id>) or its folder."
    ),
    defense_param: list[str] = typer.Option([], help="Override a defense parameter: name=value."),
    threat_model: list[str] = typer.Option(
        ["oblivious"], help="With --defense: oblivious and/or adaptive (repeat the option)."
    ),
    eot_samples: int = typer.Option(
        20, help="Draws per step of adaptive attacks on randomized defenses (EOT)."
    ),
    adaptive_gradient: str = typer.Option(
        "exact",
        help="Adaptive pass through a differentiable purifier: exact (autograd) or bpda "
        "(identity backward; a second adaptive run, suite <preset>-bpda).",
    ),
    corruptions: str | None = typer.Option(
        None,
        help="A corruption preset (bench list corruption_presets) or a comma list "
        "(rotate_seq,pixelate).",
    ),
    corruption_reference: str | None = typer.Option(
        None, help="Zoo model id of the reference model for relative FP and CE / mCE."
    ),
    n_examples: int | None = typer.Option(
        None, help="Evaluate a seeded random subset of this many test images."
    ),
    size: int | None = typer.Option(None, help="Image size (default: the dataset's)."),
    split: str = typer.Option("test", help="Split to score: test | val | train."),
    seed: int = typer.Option(0, help="Seed of the model, the subset, the attacks and the CIs."),
    batch_size: str = typer.Option(
        "256",
        help="Inference and attack batch size, or auto: the largest that fits the free memory "
        "(a size that does not fit is refused before any work).",
    ),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download", help="Download a missing MedMNIST file."),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path | None = typer.Option(
        None, help="Results folder (else $BENCH_RESULTS_DIR, else ./results)."
    ),
    cache_dir: Path | None = typer.Option(
        None, help="Adversarial-example cache (else $BENCH_CACHE_DIR, else the user cache)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    sanity_attack: bool = typer.Option(
        True, "--sanity-attack/--no-sanity-attack", help="Run PGD at 64/255 as a sanity check."
    ),
    train_if_missing: bool = typer.Option(
        False, "--train-if-missing", help="Train the model first if the zoo lacks it."
    ),
    epochs: int = typer.Option(100, help="Epochs when --train-if-missing trains."),
    executor: str = typer.Option(
        "local", help="Where attack passes are crafted: local | ray (a Ray cluster)."
    ),
    ray_address: str | None = typer.Option(
        None,
        help="With --executor ray: unset starts a local Ray (or joins $RAY_ADDRESS); 'auto' "
        "or ray://host:10001.",
    ),
    ray_gpus: float = typer.Option(0, help="With --executor ray: GPUs per task."),
    as_json: bool = typer.Option(False, "--json", help="Print the result document as JSON."),
) -> None:
    """Evaluate a zoo model clean, under attack and under corruptions; write one results JSON."""
    from benchmark.evaluation import EvaluationConfig, evaluate
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.models.zoo import ModelZoo

    config = EvaluationConfig.from_options(
        dataset=dataset,
        arch=arch,
        attacks=attacks,
        eps=eps,
        attack_params=attack_param,
        defense=defense,
        defense_params=defense_param,
        threat_models=threat_model,
        eot_samples=eot_samples,
        adaptive_gradient=adaptive_gradient,
        corruptions=corruptions,
        corruption_reference=corruption_reference,
        n_examples=n_examples,
        size=size,
        split=split,
        seed=seed,
        batch_size=batch_size,
        device=device,
        sanity_attack=sanity_attack,
        executor=executor,
        use_cache=not no_cache,
    )
    runner = None
    if executor == "ray":
        from benchmark.evaluation.executors import RayExecutor

        runner = RayExecutor(address=ray_address, num_gpus=ray_gpus)
    doc, path = evaluate(
        config,
        data_dir=data_dir,
        zoo=ModelZoo(zoo),
        out_dir=out,
        download=download,
        train_if_missing=train_if_missing,
        train_config=config.train_config(epochs),
        cache=AdversarialCache(cache_dir, enabled=not no_cache),
        executor=runner,
    )
    if as_json:
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    _render_evaluation(doc, dataset, split, path)


def _render_evaluation(doc: dict[str, Any], dataset: str, split: str, path: Path) -> None:
    clean = doc["metrics"]["clean"]
    typer.echo(f"{doc['config']['model_id']} on {dataset}/{split} (n={doc['data']['n']})")
    typer.echo(f"  accuracy  {_fmt(clean['accuracy'])}")
    typer.echo(f"  AUC       {_fmt(clean['auc'])}")
    if "per_class_accuracy" in clean:
        pca = clean["per_class_accuracy"]
        typer.echo(f"  balanced accuracy {pca['balanced_accuracy']:.4f}")
        for name, m in pca["per_class"].items():
            typer.echo(f"    {name[:40]:<40} {_fmt(m)}")
    if doc.get("defense"):
        d, base = doc["defense"], doc["metrics"]["undefended_clean"]
        typer.echo(
            f"  defense {d['id']} ({d['kind']}, threat models {', '.join(d['threat_models'])}); "
            f"undefended accuracy {_fmt(base['accuracy'])}"
        )
        c = d["cost"]
        typer.echo(
            f"  inference {c['defended_ms_per_image']:.2f} ms/image vs {c['base_ms_per_image']:.2f}"
            f" bare (x{c['overhead']:.1f})"
        )
    if "confusion_matrix" in clean:
        typer.echo("  confusion matrix (rows: true, columns: predicted)")
        for row in clean["confusion_matrix"]["matrix"]:
            typer.echo("    " + " ".join(f"{v:5d}" for v in row))
    if doc.get("attacks"):
        typer.echo(
            "  attack                                   robust acc  fooling  "
            "median Linf*255  median L2   time"
        )
        for a in doc["attacks"]:
            m, p = a["metrics"], a["perturbation"]
            tag = " (sanity)" if a.get("sanity_only") else ""
            if a.get("threat_model"):
                tag += f" [{a['threat_model']}]"
            typer.echo(
                f"    {a['cell_id'][:38] + tag:<38} {m['robust_accuracy']['value']:9.4f} "
                f"{m['fooling_ratio']['value']:8.4f} {255 * p['linf_median']:15.2f} "
                f"{p['l2_median']:9.4f} {a['timing']['seconds']:6.1f}s"
                f"{' cached' if a['timing']['cached'] else ''}"
            )
        for w in doc["worst_case"]:
            typer.echo(
                f"  worst case {w['norm']} eps {w['eps_label']}: {_fmt(w['robust_accuracy'])}"
            )
        for c in doc["sanity_checks"]:
            typer.echo(
                f"  sanity {c['name']:<26} {c['status']}{'  -> ' + c['flag'] if c['flag'] else ''}"
            )
    _render_corruptions(doc.get("corruptions"))
    typer.echo(f"wrote {path}")


def _render_corruptions(block: dict[str, Any] | None) -> None:
    if not block:
        return
    seq = block.get("sequences")
    if seq:
        typer.echo(f"  perturbation sequences ({seq['n_frames']} frames): flip probability")
        for t in seq["types"]:
            rel = t.get("relative_flip_probability")
            typer.echo(
                f"    {t['id']:<20} sev {t['severity']}  FP {_fmt(t['flip_probability'])}"
                + (f"  relative {rel:.2f}" if rel is not None else "")
            )
        typer.echo(
            f"  mFP {seq['mfp']:.4f}"
            + (f"  relative mFP {seq['relative_mfp']:.2f}" if seq.get("relative_mfp") else "")
        )
    sev = block.get("severity")
    if sev:
        typer.echo(f"  corruptions: accuracy at severities {sev['severities']}")
        for r in sev["corruptions"]:
            accs = " ".join(f"{a['value']:.3f}" for a in r["accuracy"])
            typer.echo(f"    {r['id']:<20} {accs}  mean {r['mean_accuracy']:.4f}")
        typer.echo(f"  mean corruption accuracy {sev['mean_corruption_accuracy']:.4f}")
        ce = sev.get("error_vs_reference")
        if ce and ce["mce"] is not None:
            typer.echo(
                f"  mCE {100 * ce['mce']:.1f}  relative mCE {100 * (ce['relative_mce'] or 0):.1f}"
            )


zoo_app = typer.Typer(help="Inspect the model zoo.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def zoo_list_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """List the models in the zoo with their test scores."""
    from benchmark.models.zoo import ModelZoo

    entries = ModelZoo(zoo).list()
    if as_json:
        typer.echo(json.dumps([e.card for e in entries], indent=2))
        return
    if not entries:
        typer.echo(f"the zoo {ModelZoo(zoo).root} is empty; train a model with `bench train`")
    for e in entries:
        t = e.card["metrics"]["test"]
        auc = t["auc"]["value"]
        typer.echo(
            f"{e.model_id:<44} test ACC {t['acc']['value']:.4f}  AUC "
            f"{'n/a' if auc is None else f'{auc:.4f}'}  epochs {e.card['epochs']}"
        )


@zoo_app.command("report")
def zoo_report_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path = typer.Option(Path("docs/model_zoo.md"), help="Markdown file to write."),
    pattern: str = typer.Option("*", help="Only model ids matching this wildcard."),
) -> None:
    """Write the zoo's Markdown table (docs/model_zoo.md) from the model cards."""
    import fnmatch

    from benchmark.models.zoo import ModelZoo
    from benchmark.models.zoo_report import render_zoo_markdown
    from benchmark.results.io import atomic_write_bytes

    entries = [e for e in ModelZoo(zoo).list() if fnmatch.fnmatchcase(e.model_id, pattern)]
    if not entries:
        raise ConfigError(f"no model in the zoo matches '{pattern}'; train one with bench train")
    cmd = "bench zoo report" + (f" --pattern '{pattern}'" if pattern != "*" else "")
    atomic_write_bytes(out, render_zoo_markdown(entries, command=cmd).encode())
    typer.echo(f"wrote {out} ({len(entries)} models)")


report_app = typer.Typer(help="Render Markdown reports from results files.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("attacks")
def report_attacks_cmd(
    results: list[Path] = typer.Argument(..., help="Results JSON files (validated first)."),
    out: Path = typer.Option(..., help="Markdown file to write."),
    title: str = typer.Option("Attack results", help="Page title."),
) -> None:
    """Write Markdown tables of attack results (robust accuracy, fooling ratio, norms, checks)."""
    from benchmark.results import read_result
    from benchmark.results.io import atomic_write_bytes
    from benchmark.results.report import render_attack_report

    docs = [(str(p), read_result(p)) for p in results]
    text = render_attack_report(docs, title=title)
    atomic_write_bytes(out, text.encode())
    typer.echo(f"wrote {out} ({len(docs)} results)")


@report_app.command("update")
def report_update_cmd(
    pages: list[Path] = typer.Argument(..., help="Markdown pages with bench:results blocks."),
    root: Path = typer.Option(Path("."), help="Folder the blocks' glob patterns start from."),
    check: bool = typer.Option(False, help="Only check that the pages are up to date."),
) -> None:
    """Regenerate the ``<!-- bench:results summary|full GLOB -->`` blocks of Markdown pages.

    Text outside the blocks is left as written; each block is rebuilt from the newest
    validated results file of every run folder its globs match.
    """
    from benchmark.results import read_result
    from benchmark.results.io import atomic_write_bytes
    from benchmark.results.report import update_generated_blocks

    stale = []
    for page in pages:
        if not page.is_file():
            raise ResultsError(f"page {page} does not exist; pass a Markdown file")
        old = page.read_text()
        new, n = update_generated_blocks(old, root, read_result)
        if n == 0:
            raise ResultsError(
                f"{page} has no '<!-- bench:results summary|full GLOB -->' block; add one"
            )
        if new != old:
            stale.append(page)
            if not check:
                atomic_write_bytes(page, new.encode())
        typer.echo(f"{page}: {n} blocks, {'changed' if new != old else 'up to date'}")
    if check and stale:
        raise ResultsError(
            f"{', '.join(map(str, stale))} out of date with the results; run bench report update"
        )


corruptions_app = typer.Typer(
    help="Inspect perturbation sequences and corruptions.", no_args_is_help=True
)
app.add_typer(corruptions_app, name="corruptions")


@corruptions_app.command("preview")
def corruptions_preview_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset id."),
    out: Path = typer.Option(..., help="PNG file to write."),
    kind: str = typer.Option("sequence", help="sequence | severity."),
    corruptions: str | None = typer.Option(
        None, help="Comma list of ids (default: every registered one of the kind)."
    ),
    index: int = typer.Option(0, help="Index of the image in the split."),
    split: str = typer.Option("test", help="Split to take the image from."),
    size: int | None = typer.Option(None, help="Image size (default: the dataset's)."),
    severity: int = typer.Option(3, help="Severity of the sequences (kind sequence)."),
    seed: int = typer.Option(0, help="Seed (the same frames an evaluation with it draws)."),
    scale: int = typer.Option(3, help="Enlargement of each tile."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    download: bool = typer.Option(False, "--download", help="Download a missing MedMNIST file."),
) -> None:
    """Render a PNG strip: one row per type, frames (or severities) across, on a real image."""
    from benchmark.corruptions import CORRUPTIONS, SequenceType
    from benchmark.corruptions.preview import png_bytes, sequence_sheet, severity_sheet
    from benchmark.datasets.base import DATASETS, load_split
    from benchmark.results.io import atomic_write_bytes

    if kind not in ("sequence", "severity"):
        raise ConfigError(f"--kind must be 'sequence' or 'severity', got '{kind}'")
    ids = [c.strip() for c in corruptions.split(",")] if corruptions else None
    for name in ids or []:
        CORRUPTIONS.get(name)  # unknown names fail here, before loading any data
    if ids is None:
        ids = [
            n for n, v in CORRUPTIONS.items() if isinstance(v, SequenceType) == (kind == "sequence")
        ]
    full = load_split(
        dataset,
        split,
        size=size or DATASETS.get(dataset).meta.default_size,
        data_dir=data_dir,
        download=download,
    )
    if not 0 <= index < len(full):
        raise ConfigError(f"--index {index} is outside the {split} split (0..{len(full) - 1})")
    image = full.images[index].numpy()
    if kind == "sequence":
        sheet = sequence_sheet(image, ids, index=index, severity=severity, seed=seed, scale=scale)
    else:
        colour = image.shape[0] == 3
        ids = [n for n in ids if colour or not CORRUPTIONS.get(n).colour_only]
        sheet = severity_sheet(image, ids, index=index, seed=seed, scale=scale)
    atomic_write_bytes(out, png_bytes(sheet))
    typer.echo(f"wrote {out} ({len(ids)} rows, {dataset} {split}[{index}])")


@app.command("validate")
def validate_cmd(
    submission: str = typer.Argument(..., help="Submission id (submissions/<id>) or folder."),
    param: list[str] = typer.Option([], help="Override a parameter: name=value (JSON value)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run the defense conformance suite on a submission before any evaluation."""
    from benchmark.defenses import load_submission
    from benchmark.testing.conformance import validate_submission

    sub = load_submission(submission)
    passed = validate_submission(sub, **parse_params(param))
    if as_json:
        typer.echo(
            json.dumps(
                {"submission": sub.record(), "passed": [dataclasses.asdict(c) for c in passed]},
                indent=2,
            )
        )
        return
    typer.echo(f"{sub.id} ({sub.name}, {sub.meta.kind}): {len(passed)} checks passed")
    for c in passed:
        typer.echo(f"  ok  {c.name:<24} {c.detail}")


leaderboard_app = typer.Typer(
    help="Publish results and build the static site.", no_args_is_help=True
)
app.add_typer(leaderboard_app, name="leaderboard")


@leaderboard_app.command("add")
def leaderboard_add_cmd(
    results: list[Path] = typer.Argument(..., help="Results JSON files to publish."),
    root: Path = typer.Option(Path("leaderboard/results"), help="The published results folder."),
) -> None:
    """Publish results files: validated, provenance complete, never overwriting."""
    from benchmark.leaderboard.publish import add_result

    for path in results:
        if not path.is_file():
            raise ResultsError(f"{path} does not exist; pass a results JSON file")
        target, added = add_result(path, root)
        typer.echo(f"{'added' if added else 'already published'}: {target}")


@leaderboard_app.command("build")
def leaderboard_build_cmd(
    out: Path = typer.Option(Path("leaderboard/site"), help="Output folder (replaced)."),
    root: Path = typer.Option(Path("leaderboard/results"), help="The published results folder."),
    data_cards: Path = typer.Option(Path("data_cards"), help="Folder of the data cards."),
    readme: Path = typer.Option(Path("README.md"), help="README with the submission guide."),
) -> None:
    """Render the static leaderboard site (self-contained, opens from the file system)."""
    from benchmark.leaderboard import build_site

    if not root.is_dir():
        raise ResultsError(f"results folder {root} does not exist; pass --root")
    report = build_site(root, out, data_cards=data_cards, readme=readme)
    typer.echo(
        f"built {report.pages} pages ({report.entries} entries, {report.boards} leaderboards) "
        f"into {report.out}"
    )
    for bad in report.invalid:
        typer.echo(f"left out {bad.path}: {bad.reason}", err=True)
