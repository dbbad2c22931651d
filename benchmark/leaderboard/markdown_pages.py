"""Our Markdown on the site: rendered with raw HTML disabled, its relative links resolved
against their source file (a page the site renders, an image shipped under ``files/``, or
the link dropped and its text kept), data cards' front matter, and the README's sections.
Used by :mod:`benchmark.leaderboard.build`."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

FILES = Path("files")
"""Where the site ships the repository files its Markdown shows (images), relative to its root."""
SHIPPED = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})
"""Suffixes of the repository files a rendered link or image may ship into the site."""
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass
class SiteLinks:
    """Where the relative links of our Markdown go on the site.

    Attributes:
        root: the repository root (files outside it are never shipped); None: none shipped.
        out: the site folder.
        pages: repository file (resolved) -> the site page that renders it.
    """

    root: Path | None
    out: Path
    pages: dict[Path, str]

    def target(self, href: str, source: Path) -> str | None:
        """The site's link for ``href`` written in ``source``; None: drop the link."""
        if not href or href.startswith(("#", "//")) or _SCHEME.match(href):
            return href
        path = (source.parent / unquote(href.split("#", 1)[0].split("?", 1)[0])).resolve()
        if path in self.pages:
            return self.pages[path]
        if self.root is None or path.suffix.lower() not in SHIPPED or not path.is_file():
            return None
        root = self.root.resolve()
        if not path.is_relative_to(root):
            return None
        rel = FILES / path.relative_to(root)
        (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, self.out / rel)
        return rel.as_posix()


#: The comments around a generated block (``bench report update``): markup for the updater,
#: shown as text by a renderer without raw HTML, so dropped from the page.
GENERATED_MARKER = re.compile(r"^<!-- /?bench:results[^>]*-->[ \t]*\n?", re.M)


def render_markdown(
    text: str, links: SiteLinks | None = None, source: Path | None = None, shift: int = 0
) -> Markup:
    """Our Markdown as HTML (raw HTML disabled): relative links resolved by ``links`` against
    ``source``, headings demoted by ``shift`` levels (a page's own title stays its only h1)."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(GENERATED_MARKER.sub("", text))
    for tok in tokens:
        if tok.type in ("heading_open", "heading_close") and shift:
            tok.tag = f"h{min(int(tok.tag[1]) + shift, 6)}"
        if tok.type == "inline" and tok.children and links is not None and source is not None:
            tok.children = resolve_links(tok.children, links, source)
    return Markup(md.renderer.render(tokens, md.options, {}))


def resolve_links(children: list[Token], links: SiteLinks, source: Path) -> list[Token]:
    """Inline tokens with their links and images pointed into the site (or unlinked)."""
    out: list[Token] = []
    dropping = False
    for child in children:
        if child.type == "link_open":
            href = links.target(str(child.attrGet("href") or ""), source)
            dropping = href is None
            if dropping:
                continue
            child.attrSet("href", href)
        elif child.type == "link_close" and dropping:
            dropping = False
            continue
        elif child.type == "image":
            src = links.target(str(child.attrGet("src") or ""), source)
            if src is None:  # the image is not shipped: its alternative text stays
                text = Token("text", "", 0)
                text.content = child.content
                child = text
            else:
                child.attrSet("src", src)
        out.append(child)
    return out


def strip_title(markdown: str) -> str:
    """A Markdown text without its leading ``# Title`` line (the page gives the title)."""
    first, _, rest = markdown.partition("\n")
    return rest.lstrip("\n") if first.startswith("# ") else markdown


def read_data_card(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    if text.startswith("---"):
        _, front, body = text.split("---", 2)
        meta = yaml.safe_load(front) or {}
        text = body
    return meta, text


def readme_section(markdown: str, heading: str) -> str:
    """The ``## heading`` section of a Markdown text (up to the next ``## ``)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    return match.group(1) if match else ""


def site_links(
    out: Path, readme: Path | None, data_cards: Path | None, cards: dict[str, Any]
) -> tuple[SiteLinks, Path | None, Path | None]:
    """The links of the site's Markdown, the submission guide and CONTRIBUTING.md (both beside
    the README, at the repository root, which is where the site ships images from)."""
    root = readme.parent if readme is not None else data_cards.parent if data_cards else None
    guide = root / "submissions" / "README.md" if root is not None else None
    contributing = root / "CONTRIBUTING.md" if root is not None else None
    pages: dict[Path, str] = {}
    if data_cards is not None:
        pages = {(data_cards / f"{ds}.md").resolve(): f"dataset-{ds}.html" for ds in cards}
    for path, page in (
        (readme, "submit.html"),
        (guide, "submit.html#guide"),
        (contributing, "submit.html#contributing"),
    ):
        if path is not None:
            pages[path.resolve()] = page
    return SiteLinks(root, out, pages), guide, contributing
