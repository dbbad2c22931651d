"""``bench report``: Markdown reports and the generated blocks of the docs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from benchmark.cli.app import command_group
from benchmark.errors import ResultsError

report_app = command_group("report", "Render Markdown reports from results files.")


@report_app.command("attacks")
def report_attacks_cmd(
    results: list[Path] = typer.Argument(..., help="Results JSON files (validated first)."),
    out: Path = typer.Option(..., help="Markdown file to write."),
    title: str = typer.Option("Attack results", help="Page title."),
) -> None:
    """Write Markdown tables of attack results (robust accuracy, fooling ratio, norms, checks)."""
    from benchmark.reports import render_attack_report
    from benchmark.results import read_result
    from benchmark.results.io import atomic_write_bytes

    docs = [(str(p), read_result(p)) for p in results]
    text = render_attack_report(docs, title=title)
    atomic_write_bytes(out, text.encode())
    typer.echo(f"wrote {out} ({len(docs)} results)")


def computed_blocks() -> dict[str, Callable[[Path, list[str]], str]]:
    """The block kinds that need the boards, composed here from the leaderboard and the
    reports: ``boards`` (every board's rows scored under its protocol, ranks included, of the
    datasets the block names or ``*``) and ``protocolruns`` (the protocol runs its globs match,
    with what the boards made of each)."""
    from benchmark.leaderboard.markdown_boards import (
        protocol_boards_markdown,
        protocol_run_statuses,
    )
    from benchmark.reports.blocks import latest_results, read_any
    from benchmark.reports.protocol_runs import render_protocol_runs

    def protocol_runs(root: Path, globs: list[str]) -> str:
        paths = [p for g in globs for p in latest_results(g, root)]
        if not paths:
            raise ResultsError(f"no results file matches '{' '.join(globs)}' under {root}")
        docs = [(p.relative_to(root).as_posix(), read_any(p)) for p in paths]
        return render_protocol_runs(docs, protocol_run_statuses(root))

    return {
        "boards": lambda root, words: protocol_boards_markdown(root, words or None),
        "protocolruns": protocol_runs,
    }


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
    from benchmark.reports import update_generated_blocks
    from benchmark.reports.blocks import read_any
    from benchmark.results.io import atomic_write_bytes

    stale = []
    for page in pages:
        if not page.is_file():
            raise ResultsError(f"page {page} does not exist; pass a Markdown file")
        old = page.read_text()
        new, n = update_generated_blocks(old, root, read_any, computed_blocks())
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
