"""Model cards as published records: what a card must hold, and reading the committed ones.

A model card is the zoo's ``card.json`` (recipe, metrics, history, the checkpoint's sha256);
``bench zoo cards`` commits it to ``leaderboard/zoo/cards/<model_id>.json``
(:mod:`benchmark.models.cards` writes them, after checking the checkpoint). This module is the
read side: pure JSON (no torch), so that the reports, the leaderboard and a clean clone read
the committed cards without any checkpoint. Cards read from the folder are untrusted input:
each must be JSON, a ``medrobustbench.model_card/1`` card with the fields the zoo page reads,
in a file named after its own model id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import CheckpointError

CARD_SCHEMA = "medrobustbench.model_card/1"
"""Schema id of a model card."""
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=,-]*")


def check_model_id(mid: str) -> str:
    """``mid`` itself when it is a plain model id, safe as a folder or file name (letters,
    digits and ``_.=,-``, starting with a letter or digit, no ``..``).

    Raises:
        CheckpointError: ``mid`` could name a path outside its folder, or a hidden file.
    """
    if not _ID.fullmatch(mid) or ".." in mid:
        raise CheckpointError(f"'{mid}' is not a model id; refused")
    return mid


SUFFIX = ".json"

#: Fields every published card must have (dotted: nested; a null value is present): the ones
#: the zoo page reads.
REQUIRED_FIELDS = (
    "schema",
    "model_id",
    "dataset",
    "arch",
    "image_size",
    "seed",
    "epochs",
    "best_epoch",
    "created_at",
    "training_time_seconds",
    "training_time_hours",
    "checkpoint.sha256",
    "defense",
    "metrics.val.acc.value",
    "metrics.val.auc.value",
    "metrics.test.acc.value",
    "metrics.test.auc.value",
    "environment.device",
    "environment.torch",
    "git.commit",
    "git.dirty",
    "recipe.optimizer",
    "recipe.lr",
    "recipe.batch_size",
    "recipe.epochs",
    "recipe.gamma",
    "recipe.milestones_epochs",
    "recipe.loss",
    "recipe.seed",
)
#: Further fields of a robust model's card (``defense`` is not null).
DEFENSE_FIELDS = ("defense.id", "defense.params")

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PublishedCard:
    """A committed model card: its file and parsed content (checked by :func:`read_card`)."""

    path: Path
    card: dict[str, Any]

    @property
    def model_id(self) -> str:
        """The model's zoo id (also the file's name)."""
        return str(self.card["model_id"])

    @property
    def sha256(self) -> str:
        """The sha256 of the checkpoint the card describes."""
        return str(self.card["checkpoint"]["sha256"])


def card_path(folder: str | Path, mid: str) -> Path:
    """The file of model ``mid``'s card in ``folder``.

    Raises:
        CheckpointError: ``mid`` is not a plain model id (it could name another path).
    """
    return Path(folder) / f"{check_model_id(mid)}{SUFFIX}"


def _has(card: dict[str, Any], dotted: str) -> bool:
    found: Any = card
    for part in dotted.split("."):
        if not isinstance(found, dict) or part not in found:
            return False
        found = found[part]
    return True


def check_card(card: Any, source: str | Path) -> dict[str, Any]:
    """``card`` itself when it is a complete model card; ``source`` names it in errors.

    Raises:
        CheckpointError: not a JSON object, another schema, a missing field, or a checkpoint
            sha256 that is not 64 hex digits.
    """
    fix = "restore it from git or rewrite it with `bench zoo cards`"
    if not isinstance(card, dict):
        raise CheckpointError(f"{source} is not a model card (not a JSON object); {fix}")
    if card.get("schema") != CARD_SCHEMA:
        raise CheckpointError(
            f"{source} is not a {CARD_SCHEMA} card (schema {card.get('schema')!r}); {fix}"
        )
    required = REQUIRED_FIELDS + (DEFENSE_FIELDS if card.get("defense") is not None else ())
    for dotted in required:
        if not _has(card, dotted):
            raise CheckpointError(f"{source} is not a complete model card: no '{dotted}'; {fix}")
    sha = card["checkpoint"]["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise CheckpointError(f"{source}: checkpoint.sha256 {sha!r} is not a sha256; {fix}")
    return card


def read_card(path: str | Path) -> PublishedCard:
    """Read and check one committed card (untrusted input).

    Raises:
        CheckpointError: a file name that is not a model id, a file that is not JSON, an
            incomplete card (:func:`check_card`) or a card of another model id.
    """
    path = Path(path)
    mid = path.name.removesuffix(SUFFIX)
    if not path.name.endswith(SUFFIX):
        raise CheckpointError(f"{path} is not a model card file (<model id>{SUFFIX})")
    try:
        check_model_id(mid)
    except CheckpointError:
        raise CheckpointError(f"{path}: '{mid}' is not a model id; rename or remove it") from None
    try:
        card = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not readable JSON ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
            "restore it from git or rewrite it with `bench zoo cards`"
        ) from None
    check_card(card, path)
    if card["model_id"] != mid:
        raise CheckpointError(
            f"{path} is the card of {card['model_id']!r}, not of '{mid}' (its file name); "
            "a card is stored as <model id>.json"
        )
    return PublishedCard(path, card)


def read_cards(folder: str | Path) -> list[PublishedCard]:
    """Every committed card in ``folder`` (its ``*.json`` files), each checked, sorted by id.

    Raises:
        CheckpointError: ``folder`` is not a folder, or the first malformed card (by name).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder of model cards")
    return [read_card(p) for p in sorted(folder.glob(f"*{SUFFIX}"))]


def models_named_by_results(root: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``(model id, checkpoint sha256)`` -> what the published results under ``root`` record
    of that checkpoint (``dataset``, ``arch``, the card summary a results file embeds, and the
    number of ``files``), for a page that lists published models without a committed card."""
    from benchmark.results.diagnostics import results_files

    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for path in results_files(Path(root)):
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        model = doc.get("model") if isinstance(doc, dict) else None
        if not isinstance(model, dict):
            continue
        mid, sha = model.get("model_id"), model.get("checkpoint_sha256")
        if not (isinstance(mid, str) and isinstance(sha, str) and mid and sha):
            continue
        config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
        env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
        found = seen.setdefault(
            (mid, sha),
            {
                "dataset": str(config.get("dataset", "")),
                "arch": str(model.get("arch") or config.get("arch", "")),
                "card": model.get("card") if isinstance(model.get("card"), dict) else {},
                "evaluated_on": str(env.get("device_name") or env.get("device") or ""),
                "files": 0,
            },
        )
        found["files"] += 1
    return seen


#: The seed part of a model id: it follows the size (``<arch>_<dataset>_<size>px_s<seed>
#: [_<defense tag>]``), so an architecture or dataset name with an ``_s<digits>`` of its own
#: is left alone.
_SEED_PART = re.compile(r"(_\d+px)_s(\d+)(?=_|$)")


def recipe_of(card: dict[str, Any]) -> str:
    """The recipe a checkpoint belongs to: its model id without the seed
    (``resnet18_breastmnist_28px_s1_pgd_at`` -> ``resnet18_breastmnist_28px_pgd_at``)."""
    return _SEED_PART.sub(r"\1", str(card["model_id"]), count=1)


def seed_of(model_id: str) -> int | None:
    """The seed in a model id (``resnet18_breastmnist_28px_s1_pgd_at`` -> 1; None without)."""
    found = _SEED_PART.search(model_id)
    return int(found.group(2)) if found else None


#: Card ``recipe`` fields a recipe fixes (the seeds of one recipe share them), with the value
#: a card written before the field existed stands for.
RECIPE_FIELDS: dict[str, Any] = {
    "arch": None,
    "dataset": None,
    "size": None,
    "epochs": None,
    "batch_size": None,
    "lr": None,
    "gamma": None,
    "milestones": None,
    "optimizer": "adam",
    "augmentation": "none",
    "defense": None,
    "defense_params": {},
    "select_eps": None,
    "select_steps": None,
    "selection": None,
}


def recipe_signature(recipe: dict[str, Any] | None) -> str | None:
    """What the seeds of one recipe share: the card ``recipe``'s :data:`RECIPE_FIELDS` (a field
    an older card lacks read as its default; the selection attack only for a robust model,
    whose selection uses it), as canonical JSON; None without a recipe. Two checkpoints under
    one id pattern but of different recipes (an earlier, shorter fine-tune) differ here."""
    if not recipe:
        return None
    shared = {k: recipe.get(k, default) for k, default in RECIPE_FIELDS.items()}
    if not shared["defense"]:
        shared["select_eps"] = shared["select_steps"] = None
    shared["defense_params"] = dict(shared["defense_params"] or {})
    return json.dumps(shared, sort_keys=True, default=str)


__all__ = [
    "CARD_SCHEMA",
    "DEFENSE_FIELDS",
    "RECIPE_FIELDS",
    "REQUIRED_FIELDS",
    "SUFFIX",
    "PublishedCard",
    "card_path",
    "check_card",
    "check_model_id",
    "models_named_by_results",
    "read_card",
    "read_cards",
    "rebuild_record_name",
    "recipe_of",
    "recipe_signature",
    "seed_of",
]


REBUILD_SCHEMA = "medrobustbench.rebuild/1"
"""Schema tag of a retrain record (``bench zoo rebuild`` writes one per model)."""
_REBUILD_FIELDS = {
    "model_id": str,
    "published_sha256": str,
    "rebuilt_sha256": str,
    "identical": bool,
    "expected_identical": bool,
    "gaps": list,
    "seconds": (int, float),
    "threads": int,
    "cpu_isa": str,
    "published": dict,
    "rebuilt": dict,
    "created_at": str,
}


def rebuild_record_name(rec: dict[str, Any]) -> str:
    """The file name of a retrain record: ``<model id>.json`` for a retrain with the card's own
    torch build and CPU kernels on the card's kind of machine (a check of the card), else
    ``<model id>@<kernels>[_<cpu>-<its widest kernels>]_torch<version>.json`` (a comparison on
    another machine), so a record made elsewhere never replaces the one that checked the card
    (a later retrain on the card's kind of machine does: it checks the same thing again). The
    machine is named where the record knows it (records from before the field do not); a card
    that does not record its machine's widest kernels (a pinned one from before the field)
    cannot be shown to be of the retrain's kind, so its retrains always take the ``@`` name."""
    mid = str(rec["model_id"])
    pub, ran = rec.get("published") or {}, rec.get("rebuilt") or {}
    keys = ("cpu_capability", "torch", "cpu", "cpu_host_isa")
    if all(pub.get(k) == ran.get(k) for k in keys):
        return f"{mid}{SUFFIX}"

    def tag(value: Any) -> str:
        return "".join(c if c.isalnum() or c in ".-" else "-" for c in str(value)).lower()

    kernels = tag(ran.get("cpu_capability") or "unknown")
    machine = f"_{tag(ran['cpu'])}-{tag(ran.get('cpu_host_isa'))}" if ran.get("cpu") else ""
    return f"{mid}@{kernels}{machine}_torch{tag(ran.get('torch'))}{SUFFIX}"


def read_rebuild_records(folder: str | Path) -> list[dict[str, Any]]:
    """The retrain records in ``folder`` (named by :func:`rebuild_record_name`, written by
    ``bench zoo rebuild``), each checked, sorted by model id; an absent folder holds none.

    Raises:
        CheckpointError: a file that is not a complete record of the model it is named after.
    """
    folder = Path(folder)
    out = []
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        fix = "delete it or write it again with `bench zoo rebuild`"
        try:
            rec = json.loads(path.read_bytes())
        except (OSError, UnicodeDecodeError, ValueError):
            raise CheckpointError(f"{path} is not readable JSON; {fix}") from None
        if not isinstance(rec, dict) or rec.get("schema") != REBUILD_SCHEMA:
            raise CheckpointError(f"{path} is not a {REBUILD_SCHEMA} record; {fix}")
        for key, kind in _REBUILD_FIELDS.items():
            if not isinstance(rec.get(key), kind):
                raise CheckpointError(f"{path} is not a complete retrain record: '{key}'; {fix}")
        if path.name != rebuild_record_name(rec):
            raise CheckpointError(
                f"{path}: its content (model, kernels, CPU, torch) names it "
                f"{rebuild_record_name(rec)}; {fix}"
            )
        if rec["identical"] != (rec["published_sha256"] == rec["rebuilt_sha256"]) or rec[
            "expected_identical"
        ] != (not rec["gaps"]):
            raise CheckpointError(f"{path} contradicts itself (identical / gaps); {fix}")
        out.append(rec)
    return out
