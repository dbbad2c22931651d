"""Committed model cards: the zoo's ``card.json`` of each model, published in git.

Checkpoints stay out of git; their cards are committed, one file per model id:
``leaderboard/zoo/cards/<model_id>.json`` (:data:`benchmark.paths.COMMITTED_CARDS`) holds the
zoo's ``card.json`` byte for byte (recipe, metrics, history, the checkpoint's sha256).
:func:`publish_cards` (``bench zoo cards``) writes a card only after the checkpoint it
describes passed the zoo's own checks, so a clean clone can regenerate ``docs/model_zoo.md``
from :func:`read_cards` alone (``bench zoo report``).

A published card is never silently replaced by a retrain with other weights: a committed card
whose checkpoint sha256 differs from the zoo's is refused unless the caller asks to replace it,
and :func:`merge_cards` refuses to report the two together. Cards read from the folder are
untrusted input: each must be JSON, a ``medrobustbench.model_card/1`` card with the fields the
zoo page reads, in a file named after its own model id.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmark.errors import CheckpointError, ConfigError
from benchmark.models.zoo import CARD, ModelZoo, ZooEntry
from benchmark.results.cards import (
    PublishedCard,
    card_path,
    check_card,
    read_card,
    read_cards,
)
from benchmark.results.io import atomic_write_bytes

logger = logging.getLogger(__name__)

Status = Literal["added", "unchanged", "replaced", "refused"]


@dataclass(frozen=True)
class CardOutcome:
    """What :func:`publish_cards` did with one zoo model.

    Attributes:
        model_id: the zoo id.
        status: ``added``, ``unchanged``, ``replaced`` or ``refused``.
        detail: why it was refused, else the checkpoint's sha256 (and a note, if any).
    """

    model_id: str
    status: Status
    detail: str


def changed_fields(old: Any, new: Any, path: str = "") -> list[str]:
    """The dotted paths at which ``new`` loses or changes a value of ``old`` (fields ``new``
    adds are not listed): empty when ``new`` only adds to ``old``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in old:
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append(where)
            else:
                out += changed_fields(old[key], new[key], where)
        return out
    return [] if old == new else [path or "(the card)"]


def publish_card(
    zoo: ModelZoo, mid: str, folder: str | Path, *, replace: bool = False
) -> CardOutcome:
    """Verify the zoo model ``mid`` and write its card to ``folder`` (atomically).

    The checkpoint is checked as every zoo load checks it (sha256 against the card, weights
    only, strict architecture) before anything is written. A committed card of the same id is
    kept when it records the same checkpoint (even if its text differs: the published card
    stays the one the page was built from) and refused when it records other weights, unless
    ``replace``. With ``replace``, a card of the same checkpoint is written only when it adds
    to the committed one (:func:`changed_fields`: ``bench zoo rescore``'s metrics), never when
    it drops or changes a recorded field (a retrain's card: its provenance is not the
    published training's).

    Raises:
        CheckpointError: a bad id, a checkpoint that fails its checks, an incomplete card, a
            committed card with another checkpoint sha256 (or malformed) without ``replace``,
            or a card of the same checkpoint that changes the committed one.
    """
    target = card_path(folder, mid)
    data = (zoo.folder(mid) / CARD).read_bytes()
    _, entry = zoo.load(mid)  # sha256 against the card, weights-only, strict architecture
    if json.loads(data) != entry.card:
        raise CheckpointError(f"the card of '{mid}' in {zoo.root} changed while it was checked")
    sha = str(check_card(entry.card, zoo.folder(mid) / CARD)["checkpoint"]["sha256"])
    if not target.exists():
        atomic_write_bytes(target, data)
        logger.debug("wrote %s", target)
        return CardOutcome(mid, "added", f"sha256 {sha}")
    if target.read_bytes() == data:
        return CardOutcome(mid, "unchanged", f"sha256 {sha}")
    if replace:
        try:
            held_card = json.loads(target.read_text())
        except (OSError, json.JSONDecodeError):
            held_card = None
        if isinstance(held_card, dict) and (held_card.get("checkpoint") or {}).get("sha256") == sha:
            changed = changed_fields(held_card, entry.card)
            if changed:
                raise CheckpointError(
                    f"the zoo's card of the published checkpoint changes {', '.join(changed[:4])}"
                    f"{' ...' if len(changed) > 4 else ''}: a card of the same weights may only "
                    "gain fields (`bench zoo rescore`), never lose or change what it recorded "
                    "(a retrain's card has the retrain's provenance); copy the committed card "
                    "into the zoo and rescore it there"
                )
    if not replace:
        try:
            held = read_card(target).sha256
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} (--replace overwrites it with the zoo's card)") from None
        if held == sha:
            return CardOutcome(
                mid,
                "unchanged",
                f"sha256 {sha} (same checkpoint; the committed card's text differs and is kept, "
                "--replace writes the zoo's)",
            )
        raise CheckpointError(
            f"the committed card {target} records checkpoint {held[:16]}... but the zoo's is "
            f"{sha[:16]}...: a retrain with other weights does not replace a published card "
            "(--replace does, when it should)"
        )
    atomic_write_bytes(target, data)
    logger.debug("replaced %s", target)
    return CardOutcome(mid, "replaced", f"sha256 {sha}")


def publish_cards(
    zoo: ModelZoo, folder: str | Path, pattern: str = "*", *, replace: bool = False
) -> list[CardOutcome]:
    """:func:`publish_card` for every zoo model whose id matches ``pattern`` (fnmatch); a
    refused model is reported (``refused``) and does not stop the others.

    Raises:
        ConfigError: no zoo model matches ``pattern``.
    """
    entries = [e for e in zoo.list() if fnmatch.fnmatchcase(e.model_id, pattern)]
    if not entries:
        raise ConfigError(f"no model in zoo {zoo.root} matches '{pattern}'")
    out = []
    for e in entries:
        try:
            out.append(publish_card(zoo, e.model_id, folder, replace=replace))
        except CheckpointError as exc:
            logger.debug("refused %s: %s", e.model_id, exc)
            out.append(CardOutcome(e.model_id, "refused", str(exc)))
    return out


def merge_cards(
    committed: Iterable[PublishedCard], zoo: Iterable[ZooEntry], pattern: str = "*"
) -> list[PublishedCard | ZooEntry]:
    """The cards of a report: every committed card, plus the zoo's cards of the models that
    have none, sorted by id, of the model ids that match ``pattern`` (fnmatch). A model in both
    must have the same checkpoint; its committed card is the one reported, so the page does
    not depend on the machine's zoo.

    Raises:
        CheckpointError: one line per model whose committed and zoo cards record different
            checkpoint sha256s.
    """
    published = {c.model_id: c for c in committed if fnmatch.fnmatchcase(c.model_id, pattern)}
    merged: dict[str, PublishedCard | ZooEntry] = dict(published)
    conflicts = []
    for e in zoo:
        if not fnmatch.fnmatchcase(e.model_id, pattern):
            continue
        held = published.get(e.model_id)
        if held is None:
            merged[e.model_id] = e
            continue
        sha = str(e.card.get("checkpoint", {}).get("sha256"))
        if held.sha256 != sha:
            conflicts.append(
                f"model '{e.model_id}': the committed card {held.path} records checkpoint "
                f"{held.sha256[:16]}... but the zoo's card ({e.path / CARD}) records "
                f"{sha[:16]}...; publish the zoo's with `bench zoo cards --pattern "
                f"'{e.model_id}' --replace`, or point --zoo at the zoo the committed card came from"
            )
    if conflicts:
        raise CheckpointError("\n".join(conflicts))
    return [merged[mid] for mid in sorted(merged)]


__all__ = [
    "CardOutcome",
    "PublishedCard",
    "card_path",
    "check_card",
    "merge_cards",
    "publish_card",
    "publish_cards",
    "read_card",
    "read_cards",
]
