"""The one registry implementation used for every kind of component.

Datasets, models, attacks, corruptions, defenses and metrics each have one
:class:`Registry` instance, created in their package's ``base.py``. Entries are registered
with a decorator, carry their metadata as a frozen dataclass in ``obj.meta``, and can also come
from third-party packages through the entry-point group ``medrobustbench.<kind>``
(for example ``medrobustbench.defenses``), loaded lazily on first lookup.

Example::

    MODELS = Registry("model", meta_type=ModelMeta)

    @MODELS.register("resnet18", meta=ModelMeta(family="resnet", ...))
    def resnet18(...): ...

    MODELS.get("resnet18"); MODELS.list("resnet*")
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import logging
import re
from collections.abc import Callable, Iterator
from importlib import metadata as importlib_metadata
from typing import Any, Generic, TypeVar

from benchmark.errors import RegistryError, UnknownNameError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ENTRY_POINT_PREFIX = "medrobustbench."

#: Every registry created, by kind ("dataset", "model", ...). Filled by ``Registry.__init__``.
ALL_REGISTRIES: dict[str, Registry[Any]] = {}


def _is_frozen_dataclass(obj: Any) -> bool:
    return (
        dataclasses.is_dataclass(obj)
        and not isinstance(obj, type)
        and type(obj).__dataclass_params__.frozen  # type: ignore[attr-defined]
    )


class Registry(Generic[T]):
    """A named collection of components of one kind.

    Args:
        kind: singular kind name used in messages and the entry-point group ("attack").
        meta_type: the frozen dataclass every entry's ``meta`` must be an instance of.
    """

    def __init__(self, kind: str, meta_type: type | None = None) -> None:
        if kind in ALL_REGISTRIES:
            raise RegistryError(f"a registry for kind '{kind}' already exists")
        self.kind = kind
        self.meta_type = meta_type
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = False
        ALL_REGISTRIES[kind] = self

    # -- registration -------------------------------------------------------------------------
    def register(
        self, name: str, obj: T | None = None, *, meta: Any = None
    ) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator or called directly.

        Args:
            name: snake_case id, unique within this registry.
            obj: the component (class, function or instance). Omit to use as a decorator.
            meta: frozen dataclass metadata; attached as ``obj.meta``. If omitted, ``obj``
                must already carry a ``meta`` attribute.

        Raises:
            RegistryError: the name is taken or invalid, or the metadata is missing or not a
                frozen dataclass of the registry's ``meta_type``.
        """

        def decorator(target: T) -> T:
            self._add(name, target, meta)
            return target

        if obj is None:
            return decorator
        return decorator(obj)

    def _add(self, name: str, target: T, meta: Any) -> None:
        if not _NAME_RE.match(name):
            raise RegistryError(
                f"invalid {self.kind} name '{name}': use a snake_case id such as 'my_{self.kind}'"
            )
        if name in self._entries:
            raise RegistryError(
                f"duplicate {self.kind} name '{name}': already registered by "
                f"{_describe(self._entries[name])}; choose another name"
            )
        if meta is not None:
            try:
                target.meta = meta  # type: ignore[attr-defined]
            except AttributeError as exc:  # e.g. objects with __slots__
                raise RegistryError(f"cannot attach metadata to {self.kind} '{name}'") from exc
        found = getattr(target, "meta", None)
        if found is None:
            raise RegistryError(f"{self.kind} '{name}' has no metadata: pass meta=... to register")
        if not _is_frozen_dataclass(found):
            raise RegistryError(f"metadata of {self.kind} '{name}' must be a frozen dataclass")
        if self.meta_type is not None and not isinstance(found, self.meta_type):
            raise RegistryError(
                f"metadata of {self.kind} '{name}' must be a {self.meta_type.__name__}, "
                f"got {type(found).__name__}"
            )
        self._entries[name] = target

    # -- lookup -------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Raises:
            UnknownNameError: no such entry; the message lists close matches.
        """
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def _unknown_message(self, name: str) -> str:
        return unknown_name_message(
            self.kind,
            name,
            list(self._entries),
            f"run `bench list {self.kind}s` to see the {len(self._entries)} available",
        )

    def list(self, pattern: str = "*") -> list[str]:
        """Return the sorted names matching the fnmatch ``pattern`` (``'resnet*'``)."""
        self._load_entry_points()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def items(self, pattern: str = "*") -> list[tuple[str, T]]:
        """Return ``(name, entry)`` pairs for the names matching ``pattern``."""
        return [(n, self._entries[n]) for n in self.list(pattern)]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        self._load_entry_points()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, entries={len(self._entries)})"

    # -- plugins ------------------------------------------------------------------------------
    @property
    def entry_point_group(self) -> str:
        """The entry-point group third-party packages use: ``medrobustbench.<kind>s``."""
        return f"{ENTRY_POINT_PREFIX}{self.kind}s"

    def _load_entry_points(self) -> None:
        """Import third-party entries once. Importing a plugin module registers its entries.

        An entry point may name a module (which registers on import) or an object with ``meta``
        (registered under the entry point's name).
        """
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib_metadata.entry_points(group=self.entry_point_group):
            try:
                obj = ep.load()
            except Exception as exc:
                raise RegistryError(
                    f"plugin entry point '{ep.name}' ({ep.value}) in group "
                    f"'{self.entry_point_group}' failed to load: {exc}"
                ) from exc
            if hasattr(obj, "meta") and ep.name not in self._entries:
                self._add(ep.name, obj, None)
            logger.debug("loaded %s plugin %s from %s", self.kind, ep.name, ep.value)


def unknown_name_message(what: str, name: str, candidates: list[str], fallback: str) -> str:
    """``unknown <what> '<name>'; did you mean ...?`` (or ``fallback`` without close matches).

    The one wording of unknown-name errors, used by registries and by lookups that span
    several registries (``bench info``, ``--attacks``).
    """
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else fallback
    return f"unknown {what} '{name}'; {hint}"


def _describe(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    qual = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qual}"


def first_doc_line(obj: Any) -> str:
    """The first line of ``obj``'s docstring (or its meta's ``description``), for listings."""
    desc = getattr(getattr(obj, "meta", None), "description", "") or ""
    doc = desc or (getattr(obj, "__doc__", None) or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""
