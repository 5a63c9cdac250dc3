"""The typed-section base (igpo_jax/sections.py), on a toy schema: fields with defaults
and docs, nested and free-form sections, reading from a ConfigDict, frozen instances."""

import dataclasses

import ml_collections
import pytest

from igpo_jax.sections import ConfigError, Section, check, field, require, sub


@dataclasses.dataclass(frozen=True)
class Inner(Section):
    rate: float = field(0.5, "a rate in (0, 1]")

    def __post_init__(self):
        check(0 < self.rate <= 1, "outer.inner.rate", self.rate, "need 0 < rate <= 1")


@dataclasses.dataclass(frozen=True)
class Outer(Section):
    name: str = field("a", "the name")
    sizes: tuple = field((1, 2), "sizes")
    extra: dict = field(factory=dict, doc="the user's own keys", free_form=True)
    inner: Inner = sub(Inner, "the inner section")


def test_the_config_dict_docs_and_free_form_keys_come_from_the_declarations():
    c = Outer.config_dict()
    assert isinstance(c, ml_collections.ConfigDict) and isinstance(c.inner, ml_collections.ConfigDict)
    assert c.to_dict() == {"name": "a", "sizes": (1, 2), "extra": {}, "inner": {"rate": 0.5}}
    assert Outer.docs("outer.") == {"outer.name": "the name", "outer.sizes": "sizes",
                                    "outer.extra": "the user's own keys",
                                    "outer.inner": "the inner section",
                                    "outer.inner.rate": "a rate in (0, 1]"}
    assert Outer.free_form_keys() == ("extra",)


def test_from_config_reads_overrides_nested_lists_and_free_form_dicts():
    c = Outer.config_dict()
    c.name, c.sizes, c.inner.rate = "b", [3, 4], 0.25
    c.extra = ml_collections.ConfigDict({"k": 1})
    o = Outer.from_config(c)
    assert (o.name, o.sizes, o.inner.rate, o.extra) == ("b", (3, 4), 0.25, {"k": 1})
    assert Outer.from_config(o) is o
    assert Outer.from_config({"name": "c"}) == Outer(name="c")  # missing keys: defaults
    # read by key too, and frozen: a changed copy only
    assert o["name"] == "b" and "inner" in o and o.get("nope", 7) == 7 and "nope" not in o
    with pytest.raises(KeyError):
        o["nope"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.name = "x"
    assert o.replace(name="d").name == "d" and o.name == "b"
    assert o.to_dict()["inner"] == {"rate": 0.25}


def test_a_section_checks_its_own_fields_and_the_library_refuses_raw_dicts():
    c = Outer.config_dict()
    c.inner.rate = 2.0
    with pytest.raises(ConfigError, match=r"^config.outer.inner.rate=2.0: need 0 < rate <= 1$"):
        Outer.from_config(c)
    assert require(Outer(), "here") == Outer()
    with pytest.raises(TypeError, match="here takes the typed config.*not a ConfigDict"):
        require(Outer.config_dict(), "here")
