"""Render the static leaderboard site (``bench leaderboard build``).

The site is self-contained: relative links, inline SVG charts, one stylesheet and one small
script (sorting and filtering; the tables work without it), no CDN and no network, so it opens
from the file system and from any static host. Templates are rendered by Jinja2 with
autoescape on: every string that comes from a results file (a submission's name, its authors,
its paper) is escaped. Markdown (data cards, the README) is ours and is rendered with raw HTML
disabled. Two builds from the same files are byte-identical: nothing depends on the clock, the
file system order or the machine.

Every relative link on the site resolves to a file of the site. A relative link in our Markdown
(a data card, the README, submissions/README.md, CONTRIBUTING.md) is resolved against its source
file: one to a page the site renders points to that page, one to an image in the repository
ships the image under ``files/`` (the same relative path), and any other (a document the site
does not render) keeps its text without the link.

Beside the pages, ``raw/`` holds a copy of every published results file (the entry pages link
to them and show their sha256), ``raw/results.csv``, the current run of every run folder as one
tidy table (:func:`benchmark.results.frame`: a row per run for its clean scores, a row per
attack block), and ``raw/LEDGER.jsonl``, the results folder's ledger
(:mod:`benchmark.leaderboard.ledger`). Where the folder has a ledger the build checks it first
and refuses, writing nothing, when any file differs from it; a folder without one (a scratch
folder of one's own runs) is built with a note that its files are not tamper-evident.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from benchmark.errors import LedgerError, ResultsError
from benchmark.leaderboard.entry_charts import entry_charts, mdda_sensitivity, undefended_entry
from benchmark.leaderboard.figures import entry_figures, missing_figures_note
from benchmark.leaderboard.ledger import (
    LEDGER,
    head,
    ledger_path,
    read_ledger,
    verify_ledger,
)
from benchmark.leaderboard.markdown_pages import (
    read_data_card,
    readme_section,
    render_markdown,
    site_links,
    strip_title,
)
from benchmark.leaderboard.ranking import boards
from benchmark.leaderboard.raw_files import copy_raw_files
from benchmark.leaderboard.rows import Board
from benchmark.leaderboard.runs import Entry, Invalid, Run, flags, group_entries, load_runs
from benchmark.leaderboard.seed_worst import attach_seed_worst_cases
from benchmark.leaderboard.seeds import (
    attach_seeds,
    deployed_card,
    entry_seeds,
    recipe_groups,
    seed_runs,
)
from benchmark.leaderboard.training_curve import training_curve
from benchmark.leaderboard.transfer import attach_transfer, transfer_tables
from benchmark.results.corruption_protocols import CURRENT_CORRUPTION_PROTOCOL
from benchmark.results.naming import eps_label
from benchmark.results.protocols import CURRENT_PROTOCOL, track_protocol

logger = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = ("style.css", "table.js")
CSV = Path("raw") / "results.csv"
"""Where the site keeps the table of its runs, relative to the site's root."""
RAW_LEDGER = Path("raw") / LEDGER
"""Where the site keeps the results folder's ledger, relative to the site's root."""


@dataclass(frozen=True)
class LedgerSummary:
    """What the pages show of a verified ledger: its head hash, its length, and the line that
    published each file."""

    head: str
    lines: int
    line_of: dict[str, int]


@dataclass
class BuildReport:
    """What a build produced: page count, entries, boards and the files left out."""

    out: Path
    pages: int
    entries: int
    boards: int
    invalid: list[Invalid]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f}"
    env.filters["num"] = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
    env.filters["eps"] = lambda v: eps_label(v)
    env.filters["interval"] = _interval
    env.filters["paper_link"] = paper_link
    return env


def _interval(ci: tuple[float, float] | None) -> str:
    """A 95 % interval in percent: ``[40.1, 50.3]`` (``-`` when unknown)."""
    return "-" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


_URL = re.compile(r"https?://[^\s,;)]+")


def paper_link(text: str | None, reference: str | None = None) -> Markup:
    """The paper, escaped, linked to the first http(s) URL in it or in ``reference``."""
    if not text:
        return Markup("")
    match = _URL.search(text) or _URL.search(reference or "")
    if match is None:
        return escape(text)
    url = match.group(0)
    return Markup('<a href="{}">{}</a>').format(url, text)


PAPER_NUMBERS = Path(__file__).parent / "paper_numbers.json"


def paper_tables(entry: Entry) -> list[dict[str, Any]]:
    """The papers' reported numbers for the suites and defense of ``entry`` (see
    ``paper_numbers.json``), shown beside ours on its page."""
    tables = json.loads(PAPER_NUMBERS.read_text())["tables"]
    suites = {r.suite for r in entry.runs}
    return [t for t in tables if t["suite"] in suites and t["defense"] == entry.defense]


#: Badge of an entry whose checkpoint has no committed model card (a site built with the cards).
NOT_DISTRIBUTED = "weights not distributed"
#: The badge of a robust entry whose checkpoint's card departs from the published robust
#: recipe (:func:`benchmark.training.recipes.card_recipe_mismatches`).
EARLIER_RECIPE = "earlier training recipe"


def build_site(
    results_root: Path,
    out: Path,
    *,
    data_cards: Path | None = None,
    readme: Path | None = None,
    cards: Path | None = None,
    recipe_check: Callable[[dict[str, Any]], list[Any] | None] | None = None,
) -> BuildReport:
    """Build the site from every results file under ``results_root`` into ``out``.

    ``cards``: the committed model cards (``leaderboard/zoo/cards``): each entry page and board
    row then shows the seeds of its checkpoint's recipe. ``recipe_check``: how a card departs
    from its published recipe (:func:`benchmark.training.recipes.card_recipe_mismatches`, passed
    in because the recipes load torch): an entry whose deployed checkpoint's card departs from
    it (the robust recipe of a training-time defense, the standard recipe of every other
    entry's model) gets the badge :data:`EARLIER_RECIPE`. ``out`` is emptied first (only the
    files this build writes remain). Invalid results files are reported in the returned
    :class:`BuildReport` and on the index page, and left out. Raises
    :class:`~benchmark.errors.LedgerError` (every problem, one line each) and writes nothing
    when the folder has a ledger and a file differs from it.
    """
    ledger = None
    if ledger_path(results_root).is_file():
        problems = verify_ledger(results_root)
        if problems:
            raise LedgerError(problems)
        lines = read_ledger(results_root)
        ledger = LedgerSummary(head(lines), len(lines), {ln.path: ln.seq for ln in lines})
    runs, invalid = load_runs(results_root)
    entries = group_entries(runs)
    all_boards = boards(entries)
    env = _environment()
    res, dst = results_root.resolve(), out.resolve()
    if dst == res or dst in res.parents or dst == Path.home() or dst == Path(dst.anchor):
        raise ResultsError(f"refusing to replace {out}: it holds the results or your home")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pages = 0

    def write(page: str, template: str, **context: Any) -> None:
        nonlocal pages
        html = env.get_template(template).render(**context)
        (out / page).write_text(html, encoding="utf-8")
        pages += 1

    datasets = sorted({e.dataset for e in entries})
    transfers = transfer_tables(results_root, datasets, entries, out)
    attach_transfer(all_boards, transfers)
    groups = recipe_groups(cards)  # the committed model cards, by recipe
    # With the committed cards read (a folder that gave none says nothing either way): an
    # entry whose checkpoint has none is not distributed with the benchmark.
    cards_known = cards is not None and bool(groups)
    undistributed = (
        {e.key for e in entries if deployed_card(e, groups) is None} if cards_known else set()
    )

    earlier = set()
    if recipe_check is not None:
        for e in entries:
            # The committed card, else the card block the run recorded (weights not distributed).
            card = deployed_card(e, groups) or (e.newest().doc.get("model") or {}).get("card")
            if card and recipe_check(card):
                earlier.add(e.key)
    for board in all_boards:
        board.has_earlier_recipe = any(row.entry.key in earlier for row in board.rows)

    def entry_flags(entry: Entry) -> list[str]:
        badges = flags(entry)
        if entry.key in undistributed:
            badges = [*badges, NOT_DISTRIBUTED]
        return [*badges, EARLIER_RECIPE] if entry.key in earlier else badges

    seeds = {e.key: entry_seeds(e, groups) for e in entries}
    attach_seeds(all_boards, seeds)
    attach_seed_worst_cases(all_boards, entries)
    data_docs: dict[str, tuple[dict[str, Any], str]] = {}
    for ds in datasets:
        path = (data_cards / f"{ds}.md") if data_cards else None
        if path is not None and path.is_file():
            data_docs[ds] = read_data_card(path)
    columns = _index_columns(all_boards)
    write(
        "index.html",
        "index.html",
        datasets=datasets,
        columns=columns,
        grid={(b.dataset, _column(b)): b for b in all_boards},
        cards=data_docs,
        invalid=invalid,
        ledger=ledger,
        raw_ledger=RAW_LEDGER.as_posix(),
        n_entries=len(entries),
        protocol=CURRENT_PROTOCOL,
        protocol_ranked=sum(b.n_ranked for b in all_boards if b.protocol is not None),
        corruption_protocol=CURRENT_CORRUPTION_PROTOCOL,
        corruption_ranked=sum(b.n_ranked for b in all_boards if b.kind == "corruptions"),
    )
    for board in all_boards:
        partner = None if board.protocol is None else track_protocol(board.protocol, "wrapper")
        write(
            f"board-{board.slug}.html",
            "board.html",
            board=board,
            flags=entry_flags,
            adaptive_protocol=partner,
        )
    for entry in entries:
        card = deployed_card(entry, groups)
        figures = entry_figures(entry, results_root, out)
        sha256, replaced = copy_raw_files(entry, results_root, out)
        write(
            f"entry-{entry.slug}.html",
            "entry.html",
            entry=entry,
            charts={
                **entry_charts(entry, undefended_entry(entry, entries)),
                "sensitivity": mdda_sensitivity(entry, entries),
            },
            figures=figures,
            no_figures="" if figures else missing_figures_note(entry, card, cards_known),
            seeds=seeds[entry.key],
            seed_suites=seed_runs(entry, entries),
            curve=training_curve(card),
            flags=entry_flags(entry),
            boards=[
                (b, next(r for r in b.rows if r.entry is entry))
                for b in all_boards
                if any(r.entry is entry for r in b.rows)
            ],
            papers=paper_tables(entry),
            json_dumps=lambda v: json.dumps(v, sort_keys=True),
            sha256=sha256,
            replaced=replaced,
            ledger=ledger,
            raw_ledger=RAW_LEDGER.as_posix(),
        )
    links, guide, contributing = site_links(out, readme, data_cards, data_docs)
    for ds in sorted(set(data_docs) | set(transfers)):  # a matrix gets a page without a card
        meta, body = data_docs.get(ds, ({}, ""))
        source = data_cards / f"{ds}.md" if data_cards else None
        write(
            f"dataset-{ds}.html",
            "dataset.html",
            dataset=ds,
            meta=meta,
            body=render_markdown(body, links, source) if body else Markup(""),
            transfers=transfers.get(ds, []),
        )

    def rendered(path: Path | None, text: str = "") -> Markup:
        if path is None or not path.is_file():
            return Markup("")
        return render_markdown(
            text or strip_title(path.read_text(encoding="utf-8")), links, path, 1
        )

    submit = ""
    if readme is not None and readme.is_file():
        submit = readme_section(readme.read_text(encoding="utf-8"), "Defenses and submissions")
    write(
        "submit.html",
        "submit.html",
        body=rendered(readme, submit) if submit else Markup(""),
        contributing=rendered(contributing),
        guide=rendered(guide),
    )
    for name in STATIC:
        shutil.copyfile(TEMPLATES / name, out / name)
    _write_csv(runs, out / CSV)
    if ledger is not None:
        shutil.copyfile(ledger_path(results_root), out / RAW_LEDGER)
    logger.info("built %d pages into %s (%d left out)", pages, out, len(invalid))
    return BuildReport(out, pages, len(entries), len(all_boards), invalid)


def _write_csv(runs: list[Run], path: Path) -> None:
    """``raw/results.csv``: the runs shown on the site as :func:`benchmark.results.frame`."""
    from benchmark.results.dataframe import frame, to_csv  # pandas only when building

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_csv(frame(runs)))


def _column(board: Board) -> str:
    return board.title


def _index_columns(all_boards: list[Board]) -> list[str]:
    linf = sorted({b.eps for b in all_boards if b.kind == "linf" and b.eps is not None})
    cols = [f"L-inf {eps_label(e)}" for e in linf]
    if any(b.kind == "corruptions" for b in all_boards):
        cols.append("corruptions")
    return cols
