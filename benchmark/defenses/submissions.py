"""Loading defense submissions: ``submissions/<id>/submission.toml`` + ``defense.py``.

A submission folder holds ``submission.toml``::

    id = "median_filter"
    name = "Median filter"
    authors = ["..."]
    paper = "Xu et al., Feature Squeezing, NDSS 2018, Sec. 3.2"
    license = "MIT"
    entry = "defense:MedianFilterDefense"     # <module file stem>:<class>
    threat_models = ["oblivious", "adaptive"]

    [params]                                  # defaults used by bench evaluate
    kernel_size = 3

and the module the entry names. Installed packages can instead register a :class:`Defense`
subclass in ``DEFENSES`` through the ``medrobustbench.defenses`` entry point. Every problem is
a one-line :class:`SubmissionError` naming the submission and the fix, raised before any work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from benchmark.defenses.base import (
    DEFENSE_KINDS,
    DEFENSES,
    THREAT_MODELS,
    Defense,
    DefenseMeta,
    SubmissionError,
)
from benchmark.registry import unknown_name_message

SUBMISSIONS_ENV = "BENCH_SUBMISSIONS_DIR"
REQUIRED = ("id", "name", "authors", "paper", "license", "entry", "threat_models")


def submissions_dir() -> Path:
    """``$BENCH_SUBMISSIONS_DIR``, else ``./submissions``."""
    return Path(os.environ.get(SUBMISSIONS_ENV) or "submissions").expanduser()


@dataclass(frozen=True)
class Submission:
    """A loaded submission.

    Attributes:
        id: snake_case id (the folder name).
        name: display name.
        authors: who wrote it.
        paper: the paper and section it implements.
        license: licence of the submission.
        defense_cls: the :class:`Defense` subclass.
        params: default parameters from ``submission.toml``.
        threat_models: the threat models it claims to be evaluated under.
        path: the folder (None for an entry-point defense).
        sha256: digest of ``submission.toml`` and the module (provenance).
    """

    id: str
    name: str
    authors: tuple[str, ...]
    paper: str
    license: str
    defense_cls: type[Defense]
    params: dict[str, Any] = field(default_factory=dict)
    threat_models: tuple[str, ...] = ("oblivious",)
    path: Path | None = None
    sha256: str = ""

    @property
    def meta(self) -> DefenseMeta:
        """The defense's declared metadata."""
        return self.defense_cls.meta

    def build(self, seed: int = 0, **overrides: Any) -> Defense:
        """An instance with the submission's parameters, ``overrides`` on top."""
        try:
            return self.defense_cls(seed=seed, **{**self.params, **overrides})
        except SubmissionError as exc:
            raise SubmissionError(f"submission '{self.id}': {exc}") from exc
        except Exception as exc:  # a plugin's own bug: name it, do not crash the CLI
            raise SubmissionError(
                f"submission '{self.id}': constructing {self.defense_cls.__name__} failed "
                f"({type(exc).__name__}: {exc}); fix its defense.py"
            ) from exc

    def record(self) -> dict[str, Any]:
        """The results JSON's description of the submission."""
        m = self.meta
        return {
            "id": self.id,
            "name": self.name,
            "authors": list(self.authors),
            "paper": self.paper,
            "reference": m.reference,
            "license": self.license,
            "kind": m.kind,
            "randomized": m.randomized,
            "differentiable": m.differentiable,
            "forward_passes": m.forward_passes,
            "version": m.version,
            "claimed_threat_models": list(self.threat_models),
            "sha256": self.sha256,
        }


def _fail(sid: str, problem: str) -> SubmissionError:
    return SubmissionError(f"submission '{sid}': {problem}")


def read_submission(folder: str | Path) -> Submission:
    """Load and check the submission in ``folder`` (no conformance tests; see validate)."""
    folder = Path(folder)
    sid = folder.name
    toml_path = folder / "submission.toml"
    if not toml_path.is_file():
        raise _fail(
            sid, f"{toml_path} is missing; add a submission.toml (see submissions/README.md)"
        )
    try:
        spec = tomllib.loads(toml_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(sid, f"submission.toml is not valid TOML ({exc}); fix the syntax") from exc
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise _fail(sid, f"submission.toml lacks {', '.join(missing)}; add them")
    if spec["id"] != sid:
        raise _fail(sid, f"submission.toml says id '{spec['id']}' but the folder is '{sid}'")
    claimed = tuple(spec["threat_models"])
    bad = [t for t in claimed if t not in THREAT_MODELS]
    if bad or not claimed:
        raise _fail(sid, f"threat_models must be a non-empty subset of {', '.join(THREAT_MODELS)}")
    module_name, _, class_name = str(spec["entry"]).partition(":")
    module_path = folder / f"{module_name}.py"
    if not class_name or not module_path.is_file():
        raise _fail(
            sid, f"entry '{spec['entry']}' must be '<file stem>:<class>' of a .py file here"
        )
    digest = hashlib.sha256(toml_path.read_bytes() + module_path.read_bytes()).hexdigest()
    unique = f"medrobustbench_submission_{sid}_{digest[:12]}"
    try:
        mod_spec = importlib.util.spec_from_file_location(unique, module_path)
        module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
        sys.modules[unique] = module
        mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:
        sys.modules.pop(unique, None)
        raise _fail(
            sid, f"importing {module_path.name} failed ({type(exc).__name__}: {exc})"
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Defense)):
        raise _fail(sid, f"{module_path.name} has no Defense subclass '{class_name}'")
    _check_meta(sid, cls)
    params = dict(spec.get("params", {}))
    unknown = sorted(set(params) - set(cls.defaults))
    if unknown:
        raise _fail(sid, f"[params] {', '.join(unknown)} unknown to {class_name}; remove them")
    return Submission(
        id=sid,
        name=str(spec["name"]),
        authors=tuple(spec["authors"]),
        paper=str(spec["paper"]),
        license=str(spec["license"]),
        defense_cls=cls,
        params=params,
        threat_models=claimed,
        path=folder,
        sha256=digest,
    )


def _check_meta(sid: str, cls: type[Defense]) -> None:
    meta = getattr(cls, "meta", None)
    if not isinstance(meta, DefenseMeta):
        raise _fail(sid, f"{cls.__name__}.meta must be a DefenseMeta")
    if meta.kind not in DEFENSE_KINDS:
        raise _fail(sid, f"meta.kind '{meta.kind}' is not one of {', '.join(DEFENSE_KINDS)}")
    empty = [f for f in ("reference", "version", "license") if not getattr(meta, f)]
    if not meta.authors:
        empty.append("authors")
    if empty:
        raise _fail(sid, f"{cls.__name__}.meta lacks {', '.join(empty)}; fill them in")
    if meta.forward_passes < 1:
        raise _fail(sid, "meta.forward_passes must be >= 1")
    hook = {"preprocessing": "purify", "wrapper": "wrap", "training": "train"}[meta.kind]
    if getattr(cls, hook) is getattr(Defense, hook):
        raise _fail(sid, f"a '{meta.kind}' defense must override {hook}()")


def load_submission(spec: str | Path) -> Submission:
    """A submission by folder path, by id under :func:`submissions_dir`, or by registered id."""
    path = Path(spec)
    if path.is_dir():
        return read_submission(path)
    folder = submissions_dir() / str(spec)
    if folder.is_dir():
        return read_submission(folder)
    if str(spec) in DEFENSES:
        cls = DEFENSES.get(str(spec))
        _check_meta(str(spec), cls)
        m = cls.meta
        return Submission(
            id=str(spec),
            name=m.description or str(spec),
            authors=m.authors,
            paper=m.reference,
            license=m.license,
            defense_cls=cls,
            threat_models=("oblivious", "adaptive"),
        )
    names = sorted(set(list_submissions()) | set(DEFENSES))
    raise SubmissionError(
        unknown_name_message("defense", str(spec), names, f"no folder {folder}; pass a path")
    )


def list_submissions() -> list[str]:
    """Ids of the submission folders under :func:`submissions_dir`."""
    return sorted(p.parent.name for p in submissions_dir().glob("*/submission.toml"))
