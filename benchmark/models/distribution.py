"""Getting our models: zoo entries exported as a verified archive, imported from one, or pulled
from a Hugging Face Hub repository (or a local folder laid out like one).

An export (``bench zoo export ID... --out F.tar.gz``) holds, per model, ``<id>/card.json`` and
``<id>/model.pt`` exactly as they are in the zoo, and ``MANIFEST.json`` with the sha256 of every
member. An import (``bench zoo import F.tar.gz``) and a pull (``bench zoo pull --repo
ORG/NAME``) install a model only after every check passed:

* every member matches the manifest's sha256 (an archive), no member leaves its folder, and only
  the two files of a model are taken;
* the checkpoint's sha256 is the one its card records, and, where published results name the
  model, the one they record (``expected``): the same weights the leaderboard was computed from;
* the weights load ``weights_only`` into the card's architecture (strict), in a staging folder;
* a model already in the zoo with other weights is never replaced.

The checkpoint's bytes are installed as they came (not re-serialised), so its sha256 stays the
published one. A Hub repository holds the same layout as an export, one folder per model id;
``huggingface_hub`` downloads the two files of each requested model (``HF_HUB_OFFLINE=1`` reads
only its local cache).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmark.errors import CheckpointError
from benchmark.models.zoo import CARD, CHECKPOINT, ModelZoo, ZooEntry
from benchmark.results.cards import check_model_id
from benchmark.results.diagnostics import results_files
from benchmark.results.io import ARCHIVE_MANIFEST, archive_bytes, atomic_write_bytes
from benchmark.results.parts import (
    PARTS_SUFFIX,
    manifest_path,
    read_parts,
    remove_parts,
    write_parts,
)

logger = logging.getLogger(__name__)

MANIFEST = ARCHIVE_MANIFEST
EXPORT_VERSION = 1


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_models(
    zoo: ModelZoo, ids: Iterable[str], out: Path, part_bytes: int | None = None
) -> Path:
    """Write the zoo entries ``ids`` (each verified first) into the archive ``out``; with
    ``part_bytes``, an archive larger than that is written in parts instead
    (:func:`~benchmark.results.parts.write_parts`: the parts and ``out.parts.json``, whose path
    is returned; an import joins them). Either form replaces an earlier export of the other.

    Raises:
        CheckpointError: a model that is missing or fails its sha256 or load check.
    """
    members: dict[str, bytes] = {}
    for mid in sorted(set(ids)):
        zoo.load(check_model_id(mid))  # the sha256 and weights-only checks of every zoo load
        folder = zoo.folder(mid)
        for name in (CARD, CHECKPOINT):
            members[f"{mid}/{name}"] = (folder / name).read_bytes()
    if not members:
        raise CheckpointError("nothing to export: name at least one model id")
    manifest = {
        "export_version": EXPORT_VERSION,
        "models": sorted({name.split("/")[0] for name in members}),
        "members": {name: _sha(data) for name, data in sorted(members.items())},
    }
    data = archive_bytes(members, manifest)
    out = Path(out)
    if part_bytes is None or len(data) <= part_bytes:
        written = atomic_write_bytes(out, data)
        remove_parts(out)  # an earlier export in parts to the same name would be read instead
        return written
    written = write_parts(out, data, part_bytes)
    out.unlink(missing_ok=True)  # an earlier whole export to the same name
    return written


def _archive_bytes(archive: Path) -> bytes:
    """An export's bytes: the archive, or its parts joined (``X.tar.gz.parts.json``, or
    ``X.tar.gz`` where only its parts are there), every part checked. Either name reads an
    export of either form, so one command installs what ``export_models(part_bytes=...)``
    wrote, whole or in parts."""
    parts = archive if archive.name.endswith(PARTS_SUFFIX) else None
    if parts is not None and not parts.exists():
        whole = archive.with_name(archive.name.removesuffix(PARTS_SUFFIX))
        if whole.is_file():  # small enough to have been written whole
            parts, archive = None, whole
    if parts is None and not archive.exists() and manifest_path(archive).is_file():
        parts = manifest_path(archive)
    if parts is not None:
        try:
            return read_parts(parts)
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
    if not archive.is_file():
        state = "is not a file" if archive.exists() else "does not exist"
        raise CheckpointError(f"{archive} {state} (an archive from bench zoo export)")
    return archive.read_bytes()


def _read_archive(archive: Path) -> dict[str, dict[str, bytes]]:
    """The models of an export, every member checked against the manifest: id -> files."""
    data = _archive_bytes(archive)
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")  # noqa: SIM115 (with, below)
    except (tarfile.TarError, OSError, EOFError):
        raise CheckpointError(
            f"{archive} is not a model archive (a .tar.gz from bench zoo export)"
        ) from None
    with tar:
        try:
            manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        except (KeyError, AttributeError, ValueError):
            raise CheckpointError(f"{archive} has no readable {MANIFEST}") from None
        expected = manifest.get("members") or {}
        models: dict[str, dict[str, bytes]] = {}
        for member in tar.getmembers():
            if member.name == MANIFEST:
                continue
            mid, _, name = member.name.partition("/")
            if not member.isfile() or member.name not in expected or name not in (CARD, CHECKPOINT):
                raise CheckpointError(f"{archive}: member {member.name} is not in the manifest")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if _sha(data) != expected[member.name]:
                raise CheckpointError(
                    f"{archive}: {member.name} does not match its sha256 in the manifest"
                )
            models.setdefault(check_model_id(mid), {})[name] = data
    missing = sorted(set(expected) - {f"{m}/{n}" for m, files in models.items() for n in files})
    if missing:
        raise CheckpointError(f"{archive}: {missing[0]} is in the manifest but not in the archive")
    return models


def install_model(
    zoo: ModelZoo, mid: str, files: dict[str, bytes], expected: set[str] | None = None
) -> ZooEntry:
    """Check one model's card and weights in a staging folder and install them into ``zoo``.

    Args:
        zoo: the destination.
        mid: its id.
        files: ``card.json`` and ``model.pt`` bytes.
        expected: the checkpoint sha256s published results record for ``mid`` (None or
            empty: none do).

    Raises:
        CheckpointError: a missing file, a card of another id, a checkpoint whose sha256 is
            not its card's (or not ``expected``), weights that do not load, or a model already
            in the zoo with other weights.
    """
    check_model_id(mid)
    if set(files) != {CARD, CHECKPOINT}:
        raise CheckpointError(f"model '{mid}' needs {CARD} and {CHECKPOINT}; refused")
    digest = _sha(files[CHECKPOINT])
    if expected and digest not in expected:
        raise CheckpointError(
            f"model '{mid}' has sha256 {digest[:16]}... but the published results were computed "
            f"with {', '.join(sorted(e[:16] + '...' for e in expected))}; refused"
        )
    with tempfile.TemporaryDirectory(prefix="mrb-import-") as tmp:
        staging = ModelZoo(Path(tmp))
        for name, data in files.items():
            atomic_write_bytes(staging.folder(mid) / name, data)
        try:
            card = json.loads(files[CARD])
        except ValueError:
            raise CheckpointError(f"model '{mid}': {CARD} is not JSON; refused") from None
        if not isinstance(card, dict) or card.get("model_id") != mid:
            raise CheckpointError(f"model '{mid}': its card names another model; refused")
        staging.load(mid)  # sha256 against the card, weights-only, strict architecture
    if zoo.exists(mid):
        held = zoo.entry(mid).card.get("checkpoint", {}).get("sha256")
        if held == digest:
            logger.info("model %s is already in %s", mid, zoo.root)
            return zoo.entry(mid)
        raise CheckpointError(
            f"model '{mid}' is already in {zoo.root} with other weights (sha256 "
            f"{str(held)[:16]}...); move that folder away first"
        )
    atomic_write_bytes(zoo.folder(mid) / CHECKPOINT, files[CHECKPOINT])
    atomic_write_bytes(zoo.folder(mid) / CARD, files[CARD])
    return zoo.load(mid)[1]


def import_models(
    archive: Path, zoo: ModelZoo, expected: dict[str, set[str]] | None = None
) -> list[ZooEntry]:
    """Install every model of an export into ``zoo`` (see the module docstring)."""
    models = _read_archive(archive)
    return [
        install_model(zoo, mid, files, (expected or {}).get(mid))
        for mid, files in sorted(models.items())
    ]


Fetch = Callable[[str], Path]
"""Fetches one file of a repository by its path (``<id>/card.json``); returns a local path."""


def hub_fetcher(repo_id: str, revision: str | None = None) -> Fetch:
    """Files of a Hugging Face Hub model repository, downloaded (or read from the local Hub
    cache) with ``huggingface_hub.hf_hub_download``."""
    from huggingface_hub import hf_hub_download

    def fetch(path: str) -> Path:
        try:
            return Path(hf_hub_download(repo_id=repo_id, filename=path, revision=revision))
        except Exception as exc:  # network, missing file, offline mode without a cache
            raise CheckpointError(
                f"{path} could not be fetched from the Hub repository {repo_id} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None

    return fetch


def folder_fetcher(root: Path) -> Fetch:
    """Files of a local folder laid out like a Hub repository (a mirror, or a download)."""

    def fetch(path: str) -> Path:
        found = (root / path).resolve()
        if not found.is_relative_to(root.resolve()) or not found.is_file():
            raise CheckpointError(f"{path} is not in {root}")
        return found

    return fetch


def pull_models(
    fetch: Fetch,
    ids: Iterable[str],
    zoo: ModelZoo,
    expected: dict[str, set[str]] | None = None,
) -> list[ZooEntry]:
    """Fetch the card and checkpoint of each of ``ids`` and install them (see
    :func:`install_model`)."""
    out = []
    for mid in sorted(set(ids)):
        check_model_id(mid)
        files = {name: fetch(f"{mid}/{name}").read_bytes() for name in (CARD, CHECKPOINT)}
        out.append(install_model(zoo, mid, files, (expected or {}).get(mid)))
    return out


def published_checkpoints(root: Path) -> dict[str, set[str]]:
    """model id -> the checkpoint sha256s that results files under ``root`` (the published
    results) record for it (a retrained model id has several)."""
    seen: dict[str, set[str]] = {}
    for path in results_files(Path(root)):
        try:
            doc = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        model = doc.get("model") if isinstance(doc, dict) else None
        if isinstance(model, dict) and model.get("model_id") and model.get("checkpoint_sha256"):
            seen.setdefault(str(model["model_id"]), set()).add(str(model["checkpoint_sha256"]))
    return seen


__all__ = [
    "export_models",
    "folder_fetcher",
    "hub_fetcher",
    "import_models",
    "install_model",
    "published_checkpoints",
    "pull_models",
]
