"""The one Registry: registration, lookup, wildcards, errors, metadata and entry points."""

from __future__ import annotations

import dataclasses
import importlib.metadata as im
import textwrap
from dataclasses import dataclass

import pytest

from benchmark.errors import RegistryError, UnknownNameError
from benchmark.registry import ALL_REGISTRIES, Registry


@dataclass(frozen=True)
class ThingMeta:
    description: str


@dataclass
class MutableMeta:
    description: str


@pytest.fixture
def reg():
    r = Registry("testthing", meta_type=ThingMeta)
    yield r
    ALL_REGISTRIES.pop("testthing", None)


def test_register_decorator_and_get(reg):
    @reg.register("alpha_one", meta=ThingMeta("first"))
    def alpha_one():
        """Alpha."""

    assert reg.get("alpha_one") is alpha_one
    assert alpha_one.meta == ThingMeta("first")
    assert "alpha_one" in reg and len(reg) == 1


def test_register_direct_call_uses_existing_meta(reg):
    class Source:
        meta = ThingMeta("has meta")

    obj = Source()
    assert reg.register("source_a", obj) is obj
    assert reg.get("source_a").meta.description == "has meta"


def test_list_with_wildcards_is_sorted(reg):
    for name in ("resnet50", "resnet18", "vgg16_bn", "densenet121"):
        reg.register(name, object.__new__(type(name, (), {})), meta=ThingMeta(name))
    assert reg.list() == ["densenet121", "resnet18", "resnet50", "vgg16_bn"]
    assert reg.list("resnet*") == ["resnet18", "resnet50"]
    assert reg.list("*1*") == ["densenet121", "resnet18", "vgg16_bn"]
    assert reg.list("nothing*") == []


def test_duplicate_name_is_refused(reg):
    reg.register("pgd", lambda: 1, meta=ThingMeta("a"))
    with pytest.raises(RegistryError, match="duplicate testthing name 'pgd'"):
        reg.register("pgd", lambda: 2, meta=ThingMeta("b"))
    assert reg.get("pgd")() == 1  # the first entry survives


def test_unknown_name_suggests_close_matches(reg):
    reg.register("pgd", lambda: 1, meta=ThingMeta("a"))
    reg.register("pgd_l2", lambda: 1, meta=ThingMeta("b"))
    with pytest.raises(UnknownNameError) as err:
        reg.get("pgdd")
    assert str(err.value).startswith("unknown testthing 'pgdd'; did you mean 'pgd'")
    with pytest.raises(UnknownNameError, match="bench list testthings"):
        reg.get("zzzzzz")


@pytest.mark.parametrize("bad", ["PGD", "1pgd", "pgd-l2", "", "pgd l2"])
def test_invalid_names_are_refused(reg, bad):
    with pytest.raises(RegistryError, match="invalid testthing name"):
        reg.register(bad, lambda: 1, meta=ThingMeta("x"))


def test_metadata_must_be_a_frozen_dataclass_of_the_declared_type(reg):
    with pytest.raises(RegistryError, match="has no metadata"):
        reg.register("no_meta", lambda: 1)
    with pytest.raises(RegistryError, match="frozen dataclass"):
        reg.register("mutable", lambda: 1, meta=MutableMeta("x"))

    @dataclass(frozen=True)
    class OtherMeta:
        description: str

    with pytest.raises(RegistryError, match="must be a ThingMeta"):
        reg.register("other", lambda: 1, meta=OtherMeta("x"))
    assert len(reg) == 0


def test_metadata_is_frozen(reg):
    fn = reg.register("frozen_one", lambda: 1, meta=ThingMeta("x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fn.meta.description = "changed"


def test_every_component_kind_has_one_registry():
    import benchmark.attacks
    import benchmark.corruptions
    import benchmark.datasets
    import benchmark.defenses
    import benchmark.metrics
    import benchmark.models  # noqa: F401

    kinds = {"dataset", "model", "attack", "corruption", "defense", "metric"}
    assert kinds <= set(ALL_REGISTRIES)
    assert all(isinstance(ALL_REGISTRIES[k], Registry) for k in kinds)
    with pytest.raises(RegistryError, match="already exists"):
        Registry("model")


def test_third_party_entries_come_from_entry_points(reg, tmp_path, monkeypatch):
    # A real module on disk, loaded through a real EntryPoint object.
    (tmp_path / "thirdparty_plugin.py").write_text(
        textwrap.dedent(
            """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Meta:
            description: str

        class PluginThing:
            '''A third-party component.'''
        PluginThing.meta = None
        """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import thirdparty_plugin

    thirdparty_plugin.PluginThing.meta = ThingMeta("from a plugin")
    ep = im.EntryPoint(
        name="plugin_thing",
        value="thirdparty_plugin:PluginThing",
        group="medrobustbench.testthings",
    )

    def fake_entry_points(group=None):
        return [ep] if group == "medrobustbench.testthings" else []

    monkeypatch.setattr("benchmark.registry.importlib_metadata.entry_points", fake_entry_points)
    assert reg.list() == ["plugin_thing"]
    assert reg.get("plugin_thing").meta.description == "from a plugin"


def test_broken_entry_point_is_one_clear_error(reg, monkeypatch):
    ep = im.EntryPoint(
        name="broken", value="module_that_does_not_exist:Thing", group="medrobustbench.testthings"
    )
    monkeypatch.setattr(
        "benchmark.registry.importlib_metadata.entry_points",
        lambda group=None: [ep] if group == "medrobustbench.testthings" else [],
    )
    with pytest.raises(RegistryError, match=r"plugin entry point 'broken'.*failed to load"):
        reg.list()
