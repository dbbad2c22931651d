"""``bench list`` and ``bench info``: what is registered (datasets, models, attacks, presets,
corruptions, defenses and submissions, metrics)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import typer

from benchmark.cli.app import app
from benchmark.errors import ConfigError, UnknownNameError
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
    "reports",
    "protocols",
    "corruption_protocols",
)


def _load_components() -> None:
    import benchmark.attacks
    import benchmark.attacks.presets
    import benchmark.corruptions
    import benchmark.datasets
    import benchmark.defenses
    import benchmark.metrics
    import benchmark.models
    import benchmark.reports
    import benchmark.results.corruption_protocols
    import benchmark.results.protocols  # noqa: F401


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
    ``./submissions``); a submission that does not load is listed with the reason. A
    submission that is not a pinned built-in is read in the sandbox
    (:func:`~benchmark.defenses.isolation.submission_record`)."""
    from fnmatch import fnmatchcase

    from benchmark.defenses import SubmissionError, list_submissions
    from benchmark.defenses.isolation import submission_record

    ids = sorted(set(list_submissions()) | set(ALL_REGISTRIES["defense"].list()))
    rows: dict[str, dict[str, Any]] = {}
    for sid in (i for i in ids if fnmatchcase(i, pattern)):
        try:
            rows[sid] = submission_record(sid)
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
        ...,
        help="datasets | models | attacks | presets | corruptions | defenses | metrics | "
        "reports | protocols | corruption_protocols",
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


def component_info(name: str) -> dict[str, dict[str, Any]]:
    """Metadata of every component called ``name``, by kind: registered components and, for
    defenses, the submissions folder (a submission that does not load raises its reason)."""
    from benchmark.defenses import list_submissions
    from benchmark.defenses.isolation import submission_record

    _load_components()
    out = {kind: _meta_dict(reg.get(name)) for kind, reg in ALL_REGISTRIES.items() if name in reg}
    if name in list_submissions():  # the submission's record supersedes a bare class meta
        out["defense"] = submission_record(name)
    if not out:
        names = sorted({n for reg in ALL_REGISTRIES.values() for n in reg.list()})
        names += list_submissions()
        raise UnknownNameError(
            unknown_name_message(
                "name", name, sorted(set(names)), "run `bench list <kind>` to see what is there"
            )
        )
    return out


@app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="A name: dataset, model, attack, defense, ..."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show the metadata of a component of any kind (defenses: their submission too)."""
    out = component_info(name)
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    for kind, meta in out.items():
        typer.echo(f"{name} ({kind})")
        for key, value in meta.items():
            typer.echo(f"  {key}: {value}")
