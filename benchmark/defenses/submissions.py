"""Loading defense submissions: ``submissions/<id>/submission.toml`` + ``defense.py``.

A submission folder holds ``submission.toml``, which only says what to load::

    id = "median_filter"                      # the folder name
    entry = "defense:MedianFilter"            # <module file stem>:<class>

and the module the entry names. Everything else is declared once, in code: the class's
``meta`` (:class:`DefenseMeta`: name, authors, paper, licence, claimed threat models, kind and
flags) and its ``defaults`` (the parameters ``bench evaluate`` uses). A ``submission.toml``
that still repeats one of them is refused, naming the key and where it goes. Installed
packages can instead register a :class:`Defense` subclass in ``DEFENSES`` through the
``medrobustbench.defenses`` entry point. Every problem is a one-line :class:`SubmissionError`
naming the submission and the fix, raised before any work.

Provenance: a submission's ``sha256`` covers every file of its folder (each file's relative
path and sha256, in sorted path order, as :func:`benchmark.hashing.files_digest`; caches,
``__pycache__/`` and ``*.pyc``, are left out), whether git tracks the file or not, and its
record lists the files with their sha256 and whether git tracks them and they differ from the
checked-out commit, so that a run of an untracked or edited submission says so.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.defenses.base import (
    DEFENSES,
    Defense,
    DefenseMeta,
    SubmissionError,
    VotingDefense,
)
from benchmark.hashing import file_digest, files_digest
from benchmark.registry import unknown_name_message
from benchmark.results.provenance import git_tracked_files

SUBMISSIONS_ENV = "BENCH_SUBMISSIONS_DIR"
REQUIRED = ("id", "entry")
"""The keys of ``submission.toml`` (nothing else may be there)."""
MOVED = {
    "name": "the class meta (DefenseMeta(name=...))",
    "authors": "the class meta (DefenseMeta(authors=(...)))",
    "paper": "the class meta (DefenseMeta(paper=...))",
    "license": "the class meta (DefenseMeta(license=...))",
    "threat_models": "the class meta (DefenseMeta(threat_models=(...)))",
    "params": "the class defaults (defaults = {...})",
}
"""Keys that earlier ``submission.toml`` files held and the class now declares, with where
each goes."""
META_REQUIRED = ("name", "authors", "paper", "reference", "version", "license", "threat_models")
""":class:`DefenseMeta` fields a submission must fill in."""


def submission_files(folder: str | Path) -> list[Path]:
    """Every file of a submission folder, sorted by relative path, without Python's caches
    (``__pycache__/``, ``*.pyc``): what the submission's sha256 covers.

    Raises:
        SubmissionError: the folder holds a symbolic link (hashing, bundling or mounting it
            would reach whatever it points at).
    """
    folder = Path(folder)
    links = [p for p in folder.rglob("*") if p.is_symlink()]
    if links:
        rel = links[0].relative_to(folder).as_posix()
        raise SubmissionError(
            f"submission '{folder.name}': {rel} is a symbolic link; put the file itself in the "
            "folder"
        )
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.relative_to(folder).parts
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


@dataclass(frozen=True)
class SubmissionFile:
    """One file of a submission folder, as the results record it.

    Attributes:
        path: relative POSIX path inside the folder.
        sha256: digest of its bytes.
        tracked: whether git tracks it (False outside a git work tree too).
        modified: whether it differs from the checked-out commit (tracked files only).
    """

    path: str
    sha256: str
    tracked: bool
    modified: bool = False

    def record(self) -> dict[str, Any]:
        """Its JSON form."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "tracked": self.tracked,
            "modified": self.modified,
        }


def _describe_files(folder: Path) -> tuple[str, tuple[SubmissionFile, ...]]:
    """The folder's digest and its files' descriptions."""
    paths = submission_files(folder)
    git = git_tracked_files(folder)
    files = []
    for p in paths:
        rel = p.relative_to(folder).as_posix()
        files.append(SubmissionFile(rel, file_digest(p), rel in git, git.get(rel, False)))
    return files_digest(paths, folder), tuple(files)


def describe_folder(folder: str | Path) -> tuple[str, tuple[SubmissionFile, ...]]:
    """A submission folder's sha256 and its files' descriptions, without importing it (what
    the sandboxed validation records from outside the sandbox)."""
    return _describe_files(Path(folder))


def submissions_dir() -> Path:
    """``$BENCH_SUBMISSIONS_DIR``, else ``./submissions``."""
    return Path(os.environ.get(SUBMISSIONS_ENV) or "submissions").expanduser()


@dataclass(frozen=True)
class Submission:
    """A loaded submission: its id, its class and the provenance of its files. What it is
    (name, authors, paper, licence, claimed threat models) is read from the class's ``meta``
    and its default parameters from the class's ``defaults``.

    Attributes:
        id: snake_case id (the folder name).
        defense_cls: the :class:`Defense` subclass.
        path: the folder (None for an entry-point defense).
        sha256: digest of every file of the folder (provenance; see the module docstring).
        files: the folder's files with their sha256 and git state.
    """

    id: str
    defense_cls: type[Defense]
    path: Path | None = None
    sha256: str = ""
    files: tuple[SubmissionFile, ...] = field(default=())

    @property
    def meta(self) -> DefenseMeta:
        """The defense's declared metadata."""
        return self.defense_cls.meta

    @property
    def name(self) -> str:
        """Display name (``meta.name``)."""
        return self.meta.name

    @property
    def authors(self) -> tuple[str, ...]:
        """Who wrote the method and the implementation (``meta.authors``)."""
        return self.meta.authors

    @property
    def paper(self) -> str:
        """The paper and section implemented (``meta.paper``)."""
        return self.meta.paper

    @property
    def license(self) -> str:
        """Licence of the submission (``meta.license``)."""
        return self.meta.license

    @property
    def threat_models(self) -> tuple[str, ...]:
        """The threat models it claims to be evaluated under (``meta.threat_models``)."""
        return self.meta.threat_models

    @property
    def params(self) -> dict[str, Any]:
        """Default parameters (the class's ``defaults``)."""
        return dict(self.defense_cls.defaults)

    def build(self, seed: int = 0, **overrides: Any) -> Defense:
        """An instance with the default parameters, ``overrides`` on top."""
        try:
            return self.defense_cls(seed=seed, **overrides)
        except SubmissionError as exc:
            raise SubmissionError(f"submission '{self.id}': {exc}") from exc
        except Exception as exc:  # a plugin's own bug: name it, do not crash the CLI
            raise SubmissionError(
                f"submission '{self.id}': constructing {self.defense_cls.__name__} failed "
                f"({type(exc).__name__}: {exc}); fix its defense.py"
            ) from exc

    def record(self) -> dict[str, Any]:
        """The results JSON's description of the submission."""
        return submission_record(self.id, self.meta, self.sha256, self.files)


def submission_record(
    sid: str, meta: DefenseMeta, sha256: str, files: tuple[SubmissionFile, ...]
) -> dict[str, Any]:
    """The results JSON's description of a submission, in process or in the sandbox."""
    return {
        "id": sid,
        "name": meta.name,
        "authors": list(meta.authors),
        "paper": meta.paper,
        "reference": meta.reference,
        "license": meta.license,
        "kind": meta.kind,
        "randomized": meta.randomized,
        "differentiable": meta.differentiable,
        "forward_passes": meta.forward_passes,
        "version": meta.version,
        "claimed_threat_models": list(meta.threat_models),
        "sha256": sha256,
        "files": [f.record() for f in files],
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
    moved = [k for k in spec if k in MOVED]
    if moved:
        k = moved[0]
        what = "[params]" if k == "params" else f"'{k}'"
        raise _fail(sid, f"submission.toml holds {what}; move {what} to {MOVED[k]}")
    unknown = sorted(set(spec) - set(REQUIRED))
    if unknown:
        raise _fail(
            sid,
            f"submission.toml has unknown key(s) {', '.join(unknown)}; it holds only "
            f"{' and '.join(REQUIRED)}",
        )
    missing = [k for k in REQUIRED if k not in spec]
    if missing:
        raise _fail(sid, f"submission.toml lacks {', '.join(missing)}; add them")
    if spec["id"] != sid:
        raise _fail(sid, f"submission.toml says id '{spec['id']}' but the folder is '{sid}'")
    module_name, _, class_name = str(spec["entry"]).partition(":")
    module_path = folder / f"{module_name}.py"
    if not class_name or not module_path.is_file():
        raise _fail(
            sid, f"entry '{spec['entry']}' must be '<file stem>:<class>' of a .py file here"
        )
    digest, files = _describe_files(folder)
    source = module_path.read_bytes()
    unique = entry_module_name(sid, source)
    _private_numba_cache()
    try:
        # Compiled from the very bytes that were hashed: never from a cached .pyc, which the
        # folder's digest leaves out and which Python would otherwise trust.
        module = types.ModuleType(unique)
        module.__file__ = str(module_path)
        sys.modules[unique] = module
        exec(compile(source, str(module_path), "exec", dont_inherit=True), module.__dict__)
    except Exception as exc:
        sys.modules.pop(unique, None)
        raise _fail(
            sid, f"importing {module_path.name} failed ({type(exc).__name__}: {exc})"
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Defense)):
        raise _fail(sid, f"{module_path.name} has no Defense subclass '{class_name}'")
    _check_meta(sid, cls)
    return Submission(id=sid, defense_cls=cls, path=folder, sha256=digest, files=files)


def entry_module_name(sid: str, source: bytes) -> str:
    """The module name of a submission's entry file: from the id and the file's own content
    (a README edit must not rename an unchanged module: numba's on-disk cache of a jitted
    function records its module's name and would look for the old one)."""
    return f"medrobustbench_submission_{sid}_{hashlib.sha256(source).hexdigest()[:12]}"


def _private_numba_cache() -> None:
    """numba's on-disk caches (pickles) go to the user's cache folder, never next to a
    submission's source, where a folder from elsewhere could bring its own."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    from benchmark.paths import cache_root

    os.environ["NUMBA_CACHE_DIR"] = str(cache_root() / "numba")
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()


def _check_meta(sid: str, cls: type[Defense]) -> None:
    meta = getattr(cls, "meta", None)
    if not isinstance(meta, DefenseMeta):
        raise _fail(sid, f"{cls.__name__}.meta must be a DefenseMeta")
    empty = [f for f in META_REQUIRED if not getattr(meta, f)]
    if empty:
        raise _fail(sid, f"{cls.__name__}.meta lacks {', '.join(empty)}; fill them in")
    hook = {"preprocessing": "purify", "wrapper": "wrap", "training": "train"}[meta.kind]
    if getattr(cls, hook) is getattr(Defense, hook) or (
        issubclass(cls, VotingDefense) and cls.wrap is VotingDefense.wrap
    ):
        raise _fail(sid, f"a '{meta.kind}' defense must override {hook}()")
    if issubclass(cls, VotingDefense) and meta.kind != "wrapper":
        raise _fail(sid, f"a VotingDefense is a 'wrapper' defense, not '{meta.kind}'")


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
        return Submission(id=str(spec), defense_cls=cls)
    names = sorted(set(list_submissions()) | set(DEFENSES))
    raise SubmissionError(
        unknown_name_message("defense", str(spec), names, f"no folder {folder}; pass a path")
    )


def list_submissions() -> list[str]:
    """Ids of the submission folders under :func:`submissions_dir`."""
    return sorted(p.parent.name for p in submissions_dir().glob("*/submission.toml"))
