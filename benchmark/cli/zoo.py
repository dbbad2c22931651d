"""``bench zoo``: list the model zoo, publish its cards and write its Markdown report from them,
and move models between zoos (export / import of a verified archive, pull from the Hugging Face
Hub)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from benchmark import paths
from benchmark.cli.app import command_group
from benchmark.cli.options import DATA_DIR_HELP, ISOLATION_HELP, ZOO_HELP
from benchmark.errors import CheckpointError, ConfigError, DataError
from benchmark.reports.terminal import render_zoo_list

zoo_app = command_group(
    "zoo", "Inspect the model zoo, publish its cards, export, import and pull models."
)


@zoo_app.command("list")
def zoo_list_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """List the models in the zoo with their test scores."""
    from benchmark.models.zoo import ModelZoo

    store = ModelZoo(zoo)
    entries = store.list()
    if as_json:
        typer.echo(json.dumps([e.card for e in entries], indent=2))
        return
    typer.echo(render_zoo_list(entries, store.root))


@zoo_app.command("cards")
def zoo_cards_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path = typer.Option(paths.COMMITTED_CARDS, help="Folder of the committed cards to write."),
    pattern: str = typer.Option("*", help="Only model ids matching this wildcard."),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Overwrite a committed card that records another checkpoint sha256 (a retrain), "
        "or one of the same checkpoint that the zoo's card only adds to (bench zoo rescore).",
    ),
) -> None:
    """Publish the zoo's model cards to commit (leaderboard/zoo/cards/<id>.json).

    Each checkpoint is verified against its card's sha256 (and loaded weights-only) before its
    card is written; a committed card that records other weights is refused unless --replace.
    One line per model: added, unchanged, replaced or refused (why)."""
    from benchmark.models.cards import publish_cards
    from benchmark.models.zoo import ModelZoo

    outcomes = publish_cards(ModelZoo(zoo), out, pattern, replace=replace)
    for o in outcomes:
        sep = ": " if o.status == "refused" else "  "
        typer.echo(f"{o.status:<9} {o.model_id}{sep}{o.detail}")
    refused = sum(o.status == "refused" for o in outcomes)
    if refused:
        raise CheckpointError(
            f"{refused} of {len(outcomes)} cards refused (see above); their committed cards "
            "are as they were"
        )


CARDS_HELP = (
    "Folder of committed model cards, reported with the zoo's (default "
    f"{paths.COMMITTED_CARDS} when it exists; --cards '' reports the zoo alone)."
)


@zoo_app.command("report")
def zoo_report_cmd(
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    out: Path = typer.Option(Path("docs/model_zoo.md"), help="Markdown file to write."),
    pattern: str = typer.Option("*", help="Only model ids matching this wildcard."),
    cards: str | None = typer.Option(None, metavar="<path>", help=CARDS_HELP),
    results: Path | None = typer.Option(
        Path("leaderboard/results"),
        help="Published results: checkpoints they evaluated that have no card are listed with "
        "what the results record ('' for none).",
    ),
    rebuilds: str = typer.Option(
        "benchmarks/records/rebuild",
        help="Retrain records of bench zoo rebuild, listed in their own section ('' for none).",
    ),
) -> None:
    """Write the zoo's Markdown table (docs/model_zoo.md) from the model cards: the committed
    ones (leaderboard/zoo/cards) and the zoo's. A model whose committed and zoo cards record
    different checkpoints is an error. The whole zoo's page (no --pattern) also says which
    recipes of the zoo's target have their three seeds (benchmark/training/recipes.py)."""
    from benchmark.models.cards import merge_cards, read_cards
    from benchmark.models.zoo import ModelZoo
    from benchmark.reports import render_zoo_markdown
    from benchmark.results.io import atomic_write_bytes

    folder = paths.cards_dir(cards)
    committed = read_cards(folder) if folder else []  # every card checked before writing
    entries = merge_cards(committed, ModelZoo(zoo).list(), pattern)
    if not entries:
        raise ConfigError(
            f"no model card matches '{pattern}'; train one with bench train "
            "(or point --zoo / --cards at the cards)"
        )
    import fnmatch

    from benchmark.results.cards import models_named_by_results

    uncarded = {}
    if results is not None and str(results) not in ("", ".") and results.is_dir():
        uncarded = {
            k: v
            for k, v in models_named_by_results(results).items()
            if fnmatch.fnmatchcase(k[0], pattern)
        }
    cmd = "bench zoo report" + (f" --pattern '{pattern}'" if pattern != "*" else "")
    from benchmark.results.cards import read_rebuild_records
    from benchmark.training.recipes import card_recipe_mismatches, zoo_target

    text = render_zoo_markdown(
        entries,
        command=cmd,
        uncarded=uncarded,
        recipe_check=card_recipe_mismatches,
        targets=zoo_target() if pattern == "*" else (),
        rebuilds=[
            r
            for r in (read_rebuild_records(rebuilds) if rebuilds else [])
            if fnmatch.fnmatchcase(r["model_id"], pattern)
        ],
    )
    atomic_write_bytes(out, text.encode())
    typer.echo(f"wrote {out} ({len(entries)} models)")


def _expected(results: Path | None) -> dict[str, set[str]]:
    from benchmark.models.distribution import published_checkpoints

    return published_checkpoints(results) if results is not None and results.is_dir() else {}


RESULTS_HELP = (
    "Published results folder: a model they name must have the checkpoint sha256 they record "
    "(default leaderboard/results; --results '' checks cards only)."
)


@zoo_app.command("export")
def zoo_export_cmd(
    ids: list[str] = typer.Argument(..., metavar="ID...", help="Zoo ids to export."),
    out: Path = typer.Option(..., help="The archive to write (.tar.gz)."),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    part_mib: float | None = typer.Option(
        None,
        min=0.001,
        help="Write an archive larger than this many MiB in parts (OUT.001, ... and "
        "OUT.parts.json with their sha256s), for a channel with a file-size limit.",
    ),
) -> None:
    """Export zoo entries (card + weights, each verified) as one archive with a manifest of
    every file's sha256."""
    from benchmark.models.distribution import export_models
    from benchmark.models.zoo import ModelZoo

    part_bytes = None if part_mib is None else int(part_mib * 2**20)
    path = export_models(ModelZoo(zoo), ids, out, part_bytes=part_bytes)
    typer.echo(f"wrote {path} ({len(set(ids))} models); install it with `bench zoo import {path}`")


@zoo_app.command("import")
def zoo_import_cmd(
    archive: Path = typer.Argument(
        ...,
        help="An archive from bench zoo export, or the .parts.json of one written in parts "
        "(every part beside it).",
    ),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    results: str = typer.Option("leaderboard/results", help=RESULTS_HELP),
) -> None:
    """Install the models of an exported archive, after checking every sha256 and loading the
    weights (weights-only) in a staging folder."""
    from benchmark.models.distribution import import_models
    from benchmark.models.zoo import ModelZoo

    entries = import_models(archive, ModelZoo(zoo), _expected(Path(results) if results else None))
    for e in entries:
        typer.echo(f"installed {e.model_id}  sha256 {e.card['checkpoint']['sha256']}")


@zoo_app.command("pull")
def zoo_pull_cmd(
    ids: list[str] = typer.Argument(..., metavar="ID...", help="Zoo ids to pull."),
    repo: str | None = typer.Option(
        None, help="Hugging Face Hub model repository (ORG/NAME) holding <id>/ folders."
    ),
    revision: str | None = typer.Option(None, help="Hub revision (a commit, branch or tag)."),
    from_folder: Path | None = typer.Option(
        None, help="A local folder laid out like the repository, instead of the Hub."
    ),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    results: str = typer.Option("leaderboard/results", help=RESULTS_HELP),
) -> None:
    """Download models from a Hugging Face Hub repository (or a local mirror of one) into the
    zoo, each checked like an import."""
    from benchmark.models.distribution import folder_fetcher, hub_fetcher, pull_models
    from benchmark.models.zoo import ModelZoo

    if (repo is None) == (from_folder is None):
        raise ConfigError("bench zoo pull needs one source: --repo ORG/NAME or --from-folder DIR")
    fetch = hub_fetcher(repo, revision) if repo else folder_fetcher(from_folder)  # type: ignore[arg-type]
    entries = pull_models(fetch, ids, ModelZoo(zoo), _expected(Path(results) if results else None))
    for e in entries:
        typer.echo(f"installed {e.model_id}  sha256 {e.card['checkpoint']['sha256']}")


@zoo_app.command("rebuild")
def zoo_rebuild_cmd(
    ids: list[str] = typer.Argument(
        ..., metavar="ID...", help="Committed card ids to retrain (wildcards allowed)."
    ),
    cards: str | None = typer.Option(None, metavar="<path>", help=CARDS_HELP),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    isolation: str | None = typer.Option(None, help=ISOLATION_HELP),
    records: str = typer.Option(
        "benchmarks/records/rebuild",
        help="Folder for one JSON record per retrained model ('' for none).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and its time estimate, train nothing."
    ),
    missing: bool = typer.Option(
        False,
        "--missing",
        help="Retrain only the matching models the zoo lacks with their published sha256 "
        "(restore a zoo); else every match is retrained, to check its card.",
    ),
    rescore: bool = typer.Option(
        True,
        "--rescore/--no-rescore",
        help="After an identical retrain, add to the zoo's card the split metrics cards "
        "record now and it lacks (as bench zoo rescore).",
    ),
    allow_differ: bool = typer.Option(
        False,
        "--allow-differ",
        help="Also retrain the models this machine cannot reproduce (the plan says why), to "
        "compare with their cards (installed only if its sha256 turns out to be the card's).",
    ),
) -> None:
    """Retrain published models from their committed cards (recipe, seed, thread count, CPU
    kernels) and check each checkpoint's sha256 against the card's.

    A model fine-tuned from another is trained after it (first retraining that one when the
    zoo lacks it). One line per model: identical, or differs with why it could not be
    identical (another torch build, CPU kernels, device, data file or submission folder); exits
    non-zero when a model differs that should have been identical, or when an identical one's
    recomputed ACC or AUC is not its card's (--rescore).

    Before any work the plan says which models cannot be identical on this machine (a card
    trained with other CPU kernels, torch build or on a GPU, and the fine-tunes of such a
    model); unless --allow-differ they are skipped (the others are retrained, and the command
    then exits non-zero naming them), so a restore never spends hours on retrains it cannot
    install."""
    from benchmark.device import pin_cpu_isa
    from benchmark.models.cards import read_cards
    from benchmark.models.zoo import ModelZoo
    from benchmark.results.cards import rebuild_record_name
    from benchmark.results.io import atomic_write_json
    from benchmark.results.provenance import environment
    from benchmark.training.rebuild import check_kernels, plan_rebuild, rebuild
    from benchmark.training.reproducibility import expected_gaps
    from benchmark.training.rescore import missing_metrics, rescore_card
    from benchmark.training.sandboxed import train_isolated

    folder = paths.cards_dir(cards)
    if folder is None:
        raise ConfigError("bench zoo rebuild needs the committed cards (--cards DIR)")
    store = ModelZoo(zoo)
    published = [c.card for c in read_cards(folder)]
    steps = plan_rebuild(ids, published, store, missing_only=missing)
    if missing:
        every = plan_rebuild(ids, published, store)
        have = len({s.model_id for s in every if s.requested}) - sum(s.requested for s in steps)
        typer.echo(f"have      {have} matching models already in {store.root} as published")
    total = sum(s.estimate_seconds for s in steps)
    gaps = expected_gaps(steps, environment("cpu"))
    for s in steps:
        why = "" if s.requested else " (fine-tuned from by a requested model)"
        cannot = f"; cannot be identical here: {'; '.join(gaps[s.model_id])}"
        typer.echo(
            f"plan      {s.model_id}: {s.threads} thread(s), {s.cpu_isa} kernels, "
            f"~{s.estimate_seconds / 60:.1f} min{why}{cannot if gaps[s.model_id] else ''}"
        )
    kernels = sorted(
        {str((x.card.get("environment") or {}).get("cpu_capability") or "?") for x in steps}
    )
    typer.echo(
        f"estimate  {len(steps)} models, ~{total / 60:.0f} min (the cards' own times, with "
        f"{', '.join(kernels) or 'no'} kernels; other kernels run at another speed)"
    )
    blocked = [s.model_id for s in steps if gaps[s.model_id]]
    if blocked:
        typer.echo(
            f"expect    {len(steps) - len(blocked)} of {len(steps)} identical on this machine; "
            f"{len(blocked)} cannot be (see the plan)"
        )
    if dry_run or not steps:
        return
    run = steps if allow_differ else [s for s in steps if not gaps[s.model_id]]
    unreproducible = (
        f"{len(blocked)} of {len(steps)} planned models cannot be retrained identical on this "
        f"machine (first: {blocked[0]}: {gaps[blocked[0]][0]}); retrain them where their cards "
        "were trained, or pass --allow-differ to retrain them for comparison"
        if blocked
        else ""
    )
    if not run:
        raise ConfigError(unreproducible)  # before any work
    for mid in [] if allow_differ else blocked:
        typer.echo(f"skipped   {mid}: cannot be identical on this machine (see the plan)")
    pin_cpu_isa(*check_kernels(run))

    def train(config, into):
        return train_isolated(config, isolation=isolation, data_dir=data_dir, zoo=into)

    unexpected = refused = 0
    differed: set[str] = set()
    for s in run:
        start = s.config.init_from
        if start in differed:
            differed.add(s.model_id)
            typer.echo(
                f"skipped   {s.model_id}: starts from '{start}', whose retrain differs from "
                "its card (a fine-tune starts only from the published weights)"
            )
            continue
        rec = rebuild(s, store, train)
        if records:
            data = rec.to_json()
            atomic_write_json(Path(records) / rebuild_record_name(data), data)
        if rec.identical:
            typer.echo(f"identical {s.model_id}  sha256 {rec.rebuilt_sha256[:12]}…")
            if rescore and missing_metrics(store.entry(s.model_id).card):
                try:
                    typer.echo(
                        f"{rescore_card(store, s.model_id, data_dir=data_dir):<9}  {s.model_id}"
                    )
                except (CheckpointError, DataError) as exc:
                    refused += 1
                    typer.echo(f"refused    {s.model_id}: {exc}")
            continue
        differed.add(s.model_id)
        why = "; ".join(rec.gaps) if rec.gaps else "no known cause"
        typer.echo(
            f"differs   {s.model_id}: {rec.rebuilt_sha256[:12]}… for {rec.published_sha256[:12]}…"
            f" ({why})"
        )
        unexpected += rec.expected_identical
    skipped = f"; also, {unreproducible}" if unreproducible and not allow_differ else ""
    if unexpected:
        raise CheckpointError(
            f"{unexpected} retrained model(s) differ from their cards with nothing to explain "
            f"it{skipped}"
        )
    if refused:
        raise CheckpointError(
            f"{refused} identical retrain(s) not rescored (see above); their cards are as "
            f"published{skipped}"
        )
    if skipped:
        raise ConfigError(unreproducible)


@zoo_app.command("rescore")
def zoo_rescore_cmd(
    ids: list[str] = typer.Argument(
        ..., metavar="ID...", help="Zoo model ids to rescore (wildcards allowed)."
    ),
    zoo: Path | None = typer.Option(None, help=ZOO_HELP),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
) -> None:
    """Add to older zoo cards the split metrics cards record now (the balanced accuracy and
    its interval, from which the zoo page tells a collapsed model).

    Each model is predicted on its card's validation and test splits with its own checkpoint
    (sha256-checked), on the card's data (sha256-checked); a recomputed ACC or AUC (value or
    interval) that is not the card's leaves the card unchanged, and the other models go on.
    Nothing the card says is changed; the added fields are listed in its `rescored` record.
    Publish with `bench zoo cards --replace` (which accepts a card of the same weights only
    when it adds to the committed one)."""
    import fnmatch

    from benchmark.models.zoo import ModelZoo
    from benchmark.training.rescore import rescore_card

    store = ModelZoo(zoo)
    known = [e.model_id for e in store.list()]
    chosen = [m for m in known if any(fnmatch.fnmatchcase(m, p) for p in ids)]
    if not chosen:
        raise ConfigError(f"no zoo model in {store.root} matches {' '.join(ids)}")
    failed = 0
    for mid in chosen:  # one model's failure does not stop the others
        try:
            typer.echo(f"{rescore_card(store, mid, data_dir=data_dir):<9}  {mid}")
        except (CheckpointError, DataError) as exc:
            failed += 1
            typer.echo(f"refused    {mid}: {exc}")
    if failed:
        raise CheckpointError(
            f"{failed} of {len(chosen)} cards not rescored (see above); they are as they were"
        )
