"""A typed, read-only view of one results document.

The reports, the leaderboard and the CLI read results through :class:`RunView` instead of
digging into the JSON with raw keys. A view wraps the validated document as it is (no copy, no
conversion up front): every accessor reads its part when asked, so a view of a large run costs
nothing until used, and the document stays the single source of truth (``view.doc``).

Example::

    run = RunView(read_result(path), path="pneumoniamnist/medrdf/.../medrdf_2026....json")
    for a in run.attack_cells():
        print(a.label, a.threat_model, a.robust_accuracy.value)
    run.worst_cases(ThreatModel.ADAPTIVE)

Per-image outcomes (schema 2, :mod:`benchmark.results.outcomes`): ``run.labels``,
``run.indices``, ``run.clean_outcomes()``, ``attack.outcomes()`` and
``run.worst_case_outcomes(norm, eps)`` give numpy vectors (None for a schema-1 file), from
which every accuracy, worst case, balanced figure and paired test of the run is recomputed.

Pure Python and numpy (no torch), like :mod:`benchmark.results.naming`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from benchmark.errors import ResultsError
from benchmark.results.blocks import AttackView, Metric, WorstCaseView
from benchmark.results.naming import ThreatModel, defense_label, run_suite
from benchmark.results.outcomes import read_indices, read_labels, read_outcomes

#: Key of the worst case over every attack of a defended run, whatever its threat model.
ANY = "any"


def entry_key(
    dataset: str,
    model_id: str,
    checkpoint_sha256: str = "",
    defense: str | None = None,
    defense_params: dict[str, Any] | None = None,
) -> str:
    """A leaderboard entry's key: ``dataset/model_id[@sha256 prefix][/defense,params]``, one
    checkpoint under one defense configuration on one dataset."""
    key = f"{dataset}/{model_id}"
    if checkpoint_sha256:
        key += "@" + checkpoint_sha256[:12]
    if defense:
        params = defense_params or {}
        key += "/" + defense + "".join(f",{k}={v}" for k, v in sorted(params.items()))
    return key


@dataclass(frozen=True)
class RunView:
    """One validated results document and where it was read from.

    Args:
        doc: the results document (as :func:`~benchmark.results.schema.read_result` returns).
        path: its name for people: the path relative to the results root on the site and in
            the generated pages (empty when unknown).
    """

    doc: dict[str, Any]
    path: str = field(default="")

    # -- identity ---------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.doc["config"]

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    @property
    def model_id(self) -> str:
        return self.config["model_id"]

    @property
    def arch(self) -> str:
        return self.config.get("arch", "")

    @property
    def checkpoint_sha256(self) -> str:
        """The sha256 of the evaluated checkpoint ('' where the file does not record one)."""
        return (self.doc.get("model") or {}).get("checkpoint_sha256") or ""

    @property
    def defense(self) -> str | None:
        return self.config.get("defense") or None

    @property
    def defense_params(self) -> dict[str, Any]:
        return dict(self.config.get("defense_params") or {})

    @property
    def defense_label(self) -> str:
        return defense_label(self.config)

    @property
    def defended(self) -> bool:
        return bool(self.config.get("defense"))

    @property
    def entry_key(self) -> str:
        """The leaderboard entry the run belongs to (:func:`entry_key`)."""
        return entry_key(
            self.dataset, self.model_id, self.checkpoint_sha256, self.defense, self.defense_params
        )

    @property
    def suite(self) -> str:
        """The run folder's suite: attack preset, corruption preset, both or ``clean``."""
        return run_suite(self.config)

    @property
    def run_id(self) -> str:
        return str(self.doc["run_id"])

    @property
    def created_at(self) -> str:
        return self.doc["created_at"]

    @property
    def n(self) -> int:
        """Images evaluated."""
        return self.doc["data"]["n"]

    @property
    def indices(self) -> np.ndarray | None:
        """Split indices of the images scored, in the order of the outcomes (None: schema 1)."""
        return read_indices(self.doc["data"].get("indices"))

    @property
    def labels(self) -> np.ndarray | None:
        """Labels of the images scored: int64 (n,) class ids, or (n, L) 0/1 for a multi-label
        task (None: schema 1)."""
        return read_labels(self.doc["data"].get("labels"), self.n)

    @property
    def images_key(self) -> tuple | None:
        """What makes two runs' images the same: the data file's sha256, the split and the
        split indices scored, in order (the file and the indices fix the labels too). Two runs
        with equal keys scored the same images in the same order, so their outcomes pair image
        by image. A schema-1 file has no ``data.indices``: its subset's indices, or the whole
        split in order, stand in. None when the indices cannot be known."""
        data = self.doc["data"]
        indices = self.indices
        if indices is None:
            subset = data.get("subset")
            if isinstance(subset, dict) and subset.get("indices") is not None:
                indices = np.asarray(subset["indices"])
            elif not subset and data.get("n") == data.get("n_split"):
                indices = np.arange(int(data["n"]))
            else:
                return None
        ordered = np.asarray(indices, dtype=np.int64).tobytes()
        return (data.get("sha256"), data.get("split"), ordered)

    # -- clean scores -----------------------------------------------------------------------
    @property
    def clean(self) -> dict[str, Any]:
        """The clean metrics block (of the defended pipeline for a defended run)."""
        return self.doc["metrics"]["clean"]

    @property
    def bare_clean(self) -> dict[str, Any]:
        """The clean metrics of the model without its defense (the clean block if undefended)."""
        return self.doc["metrics"].get("undefended_clean", self.clean)

    @property
    def clean_accuracy(self) -> Metric:
        return Metric.of(self.clean["accuracy"])  # type: ignore[return-value]

    @property
    def clean_auc(self) -> Metric | None:
        return Metric.of(self.clean.get("auc"))

    @property
    def clean_balanced_accuracy(self) -> float | None:
        return (self.clean.get("per_class_accuracy") or {}).get("balanced_accuracy")

    def clean_outcomes(self) -> np.ndarray | None:
        """(n,) bool: image classified correctly clean (by the defended pipeline for a
        defended run); None for a schema-1 file."""
        return read_outcomes(self.clean.get("outcomes"), self.n)

    @property
    def clean_votes(self) -> dict[str, Any] | None:
        """MedRDF's vote report on clean images (None for other defenses)."""
        return self.doc["metrics"].get("clean_votes")

    # -- attacks ----------------------------------------------------------------------------
    @cached_property
    def attacks(self) -> tuple[AttackView, ...]:
        """Every attack block, in the document's order (sanity-only ones included)."""
        n = self.n
        return tuple(AttackView(a, n) for a in self.doc.get("attacks", []))

    def attack_cells(self) -> list[AttackView]:
        """The attack blocks that count (sanity-only ones left out)."""
        return [a for a in self.attacks if not a.sanity_only]

    def strongest_threat_model(self) -> ThreatModel:
        """The strongest threat model this run evaluated (adaptive beats oblivious)."""
        if not self.defended:
            return ThreatModel.WHITE_BOX
        by = self.doc.get("worst_case_by_threat_model") or {}
        return ThreatModel.ADAPTIVE if ThreatModel.ADAPTIVE.value in by else ThreatModel.OBLIVIOUS

    @property
    def worst_cases_by_threat_model(self) -> dict[str, list[WorstCaseView]] | None:
        """Worst cases per threat model (keys ``oblivious``, ``adaptive``, ``any``) of a
        defended run, in the document's order; None for an undefended run."""
        by = self.doc.get("worst_case_by_threat_model")
        if by is None:
            return None
        return {tm: [WorstCaseView(w) for w in ws] for tm, ws in by.items()}

    @property
    def worst_case(self) -> list[WorstCaseView]:
        """The document's headline worst cases (``worst_case``: white-box for an undefended
        run, the strongest threat model's for a defended one)."""
        return [WorstCaseView(w) for w in self.doc.get("worst_case") or []]

    def worst_cases(self, threat_model: ThreatModel | str | None = None) -> list[WorstCaseView]:
        """Worst-case blocks of one threat model. By default the ranking's: robust to every
        attack of the run (``any``: oblivious, adaptive and black-box together) when recorded,
        else the strongest threat model's. An undefended run has one list (white-box)."""
        by = self.doc.get("worst_case_by_threat_model")
        if not by:
            return self.worst_case
        if threat_model is None:
            threat_model = ANY if ANY in by else self.strongest_threat_model()
        return [WorstCaseView(w) for w in by.get(str(threat_model), [])]

    def _default_threat_model(self) -> str | None:
        """The threat model :meth:`worst_cases` reports by default (None undefended)."""
        by = self.doc.get("worst_case_by_threat_model")
        if not by:
            return None
        return ANY if ANY in by else self.strongest_threat_model().value

    def worst_case_members(
        self, norm: str, eps: float, threat_model: ThreatModel | str | None = None
    ) -> list[AttackView]:
        """The attack blocks of a worst case, chosen as the evaluation chose them: the bounded
        ``norm`` attacks at ``eps`` or below, sanity-only blocks left out, of one threat model
        group (a block counts toward the groups of :attr:`ThreatModel.summary_groups` that the
        run evaluated; ``any``: every block). The default threat model is :meth:`worst_cases`'.
        """
        if threat_model is None:
            threat_model = self._default_threat_model()
        cells = [
            a for a in self.attack_cells() if a.bounded and a.norm == norm and a.eps <= eps + 1e-12
        ]
        if threat_model is None or str(threat_model) == ANY:
            return cells
        try:
            group = ThreatModel(str(threat_model))
        except ValueError:
            raise ResultsError(f"unknown threat model {str(threat_model)!r}") from None
        evaluated = set(self.doc.get("worst_case_by_threat_model") or {})
        return [
            a
            for a in cells
            if group in a.threat_model.summary_groups
            and (group is a.threat_model or group.value in evaluated)
        ]

    def worst_case_outcomes(
        self, norm: str, eps: float, threat_model: ThreatModel | str | None = None
    ) -> np.ndarray | None:
        """(n,) bool: image classified correctly clean and under every member attack of the
        worst case at (``norm``, ``eps``) (:meth:`worst_case_members`); None for a schema-1
        file. Its mean is the stored worst case's robust accuracy, its per-class mean averaged
        over classes the stored balanced one.

        Raises:
            ResultsError: no attack of the run has that norm and budget.
        """
        members = self.worst_case_members(norm, eps, threat_model)
        if not members:
            raise ResultsError(f"{self.path or self.run_id}: no {norm} attack at eps <= {eps}")
        robust = self.clean_outcomes()
        if robust is None:
            return None
        for a in members:
            robust = robust & a.outcomes()  # type: ignore[operator]
        return robust

    # -- everything else --------------------------------------------------------------------
    @property
    def flags(self) -> list[str]:
        return list(self.doc.get("flags", []))

    @property
    def sanity_checks(self) -> list[dict[str, Any]]:
        return list(self.doc.get("sanity_checks") or [])

    @property
    def defense_block(self) -> dict[str, Any]:
        """The ``defense`` block (empty when undefended)."""
        return self.doc.get("defense") or {}

    @property
    def cost(self) -> dict[str, Any]:
        """The defense's inference cost (empty when not measured)."""
        return self.defense_block.get("cost") or {}

    @property
    def corruptions(self) -> dict[str, Any]:
        """The corruption block (empty for an attack-only run)."""
        return self.doc.get("corruptions") or {}

    @property
    def sequences(self) -> dict[str, Any] | None:
        """Perturbation sequences (flip probability), if evaluated."""
        return self.corruptions.get("sequences")

    @property
    def severity(self) -> dict[str, Any] | None:
        """Severity corruptions (accuracy per corruption and severity), if evaluated."""
        return self.corruptions.get("severity")

    @property
    def mfp(self) -> float | None:
        """Mean flip probability over the perturbation sequences."""
        return self.sequences["mfp"] if self.sequences else None

    @property
    def corruption_accuracy(self) -> float | None:
        """Mean accuracy over the severity corruptions."""
        return self.severity["mean_corruption_accuracy"] if self.severity else None


__all__ = ["ANY", "RunView", "entry_key"]
