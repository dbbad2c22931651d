"""What a protocol campaign (``protocol_campaign.py``) keeps and brings back from a lent GPU
machine: its log (``campaign.json``), the results archive with the cards of the models it
trained, and the trained models that fit the machine's returned-file limits, in parts."""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path
from typing import Any

from benchmark.models.zoo import CARD, CHECKPOINT

#: The results archive's folder of the cards of the models the campaign trained.
CARDS_FOLDER = "cards"


def archive_results(out: Path, zoo: Any = None, trained: list[str] | None = None) -> None:
    """Pack every results file under ``out`` into ``results.tar.gz`` (atomically), with the
    zoo's card of every model of ``trained`` as ``cards/<id>.json``: its validation curve,
    recipe, device and checkpoint sha256 come back even where its weights cannot."""
    tmp = out / "results.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(out.rglob("*.json")):
            if path.name != "campaign.json":
                tar.add(path, arcname=path.relative_to(out).as_posix())
        for mid in trained or []:
            if zoo is not None and zoo.exists(mid):
                tar.add(zoo.folder(mid) / CARD, arcname=f"{CARDS_FOLDER}/{mid}.json")
    tmp.replace(out / "results.tar.gz")


def bring_back(
    zoo: Any, pending: list[str], dest: Path, budget_bytes: int, part_bytes: int
) -> list[str]:
    """Export the models of ``pending`` (in order) that fit, together, in ``budget_bytes`` of
    returned files, as ``dest/models.tar.gz`` in parts of at most ``part_bytes`` (``bench zoo
    import dest/models.tar.gz.parts.json`` installs them after checking every sha256); the
    ids exported. A model that does not fit is skipped (its card still comes back in the
    results archive)."""
    from benchmark.models.distribution import export_models
    from benchmark.results.parts import part_files, remove_parts

    chosen: list[str] = []
    used = 0
    for mid in pending:
        if not zoo.exists(mid):
            continue
        size = sum((zoo.folder(mid) / f).stat().st_size for f in (CARD, CHECKPOINT))
        if used + size <= budget_bytes:  # gzip shrinks float weights a little, tar adds a little
            chosen.append(mid)
            used += size
    while chosen:
        written = export_models(zoo, chosen, dest / "models.tar.gz", part_bytes=part_bytes)
        files = part_files(dest / "models.tar.gz") or [written]
        if sum(f.stat().st_size for f in files) <= budget_bytes:
            break
        chosen.pop()  # the archive came out larger than its members: one model fewer
    if not chosen:  # nothing fits: no export of an earlier attempt stays behind
        (dest / "models.tar.gz").unlink(missing_ok=True)
        remove_parts(dest / "models.tar.gz")
    return chosen


class CampaignLog:
    """``campaign.json``: the jobs' records, every model trained (noted the moment it is in
    the zoo, so a call killed in the middle of a job still reports it), and the models
    brought back by each call. Rewritten atomically on every change."""

    def __init__(self, out: Path) -> None:
        self.path = out / "campaign.json"
        doc = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.jobs: list[dict[str, Any]] = doc.get("jobs", [])
        self.trained: list[str] = doc.get("trained") or list(
            dict.fromkeys(t["train"] for r in self.jobs for t in r.get("trained", []))
        )
        self.brought_back: list[str] = doc.get("brought_back", [])
        self.earlier_calls = list(self.brought_back)  # models of this call replace none of them
        self.errors: list[str] = doc.get("errors", [])

    def save(self) -> None:
        from benchmark.results.io import atomic_write_json

        atomic_write_json(
            self.path,
            {
                "jobs": self.jobs,
                "trained": self.trained,
                "brought_back": self.brought_back,
                "errors": self.errors,
            },
        )

    def note_trained(self, mid: str) -> None:
        if mid not in self.trained:
            self.trained.append(mid)
            self.save()

    def pending(self) -> list[str]:
        """Trained models no earlier call brought back, in training order."""
        return [m for m in self.trained if m not in self.earlier_calls]

    def this_call(self) -> list[str]:
        """The models this call's latest export holds."""
        return self.brought_back[len(self.earlier_calls) :]


def _robust(zoo: Any, mid: str) -> bool:
    return zoo.exists(mid) and bool(zoo.entry(mid).card.get("defense"))


def bring_back_now(log: CampaignLog, zoo: Any, args: argparse.Namespace) -> None:
    """This call's export of the trained models that fit: those its earlier export held
    (rewriting it never drops one), then the robust models (a standard model can be retrained
    from its card more cheaply), each in training order. A failure is logged, not raised."""
    kept = log.this_call()
    rest = sorted((m for m in log.pending() if m not in kept), key=lambda m: not _robust(zoo, m))
    try:
        chosen = bring_back(
            zoo,
            kept + rest,
            args.models_out,
            int(args.bring_mib * 2**20),
            int(args.part_mib * 2**20),
        )
    except Exception as exc:  # the results and cards still come back
        log.errors.append(f"bring back: {type(exc).__name__}: {exc}")
        print(f"models not brought back: {exc}")
        return
    log.brought_back = log.earlier_calls + chosen
    print(f"models brought back: {', '.join(chosen) or 'none fit'}")
