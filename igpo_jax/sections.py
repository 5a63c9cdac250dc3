"""Typed config sections: the config schema, declared once.

Every section of the config (``sampler``, ``rl``, ``igpo``, ``optim``, ...) is a frozen
dataclass owned by the module that uses it (``sampling.SamplerConfig``,
``rl.grpo.RLConfig``, ``rl.igpo.IgpoConfig``, ``optim.OptimConfig``, ...). Each checks
its own fields when built and raises :class:`ConfigError` naming the key, the value and
the fix; checks that need two sections stay in ``configlib.validate``. Sections are
read by attribute (``c.rl.group_size``) and, for code that takes a mapping, by key
(``c.data["source"]``, ``.get``, ``.to_dict()``); they cannot be changed after the
conversion (``dataclasses.replace`` makes a changed copy).

Each field is declared once, with its default and a one-line doc (:func:`field`,
:func:`sub`); ``configlib.base_config()`` (the ``ml_collections`` config that recipe
files and ``--config.key=value`` override) and ``--print_config`` are generated from
the declarations, so a key, its default and its doc live in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """A config value that cannot work, with the key and what to do about it."""


def check(ok: bool, key: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"config.{key}={value!r}: {fix}")


def field(default: Any = dataclasses.MISSING, doc: str = "", *,
          factory: Any = dataclasses.MISSING, free_form: bool = False) -> dataclasses.Field:
    """A config key: its default (or a ``factory`` for a mutable one) and a one-line doc.
    ``free_form``: a dict whose keys are the user's (no schema below it)."""
    meta = {"doc": doc, "free_form": free_form}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def sub(cls, doc: str = "") -> dataclasses.Field:
    """A field holding a nested section of type ``cls`` (default: ``cls()``)."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls, "doc": doc})


class Section:
    """Mixin of the typed sections (frozen dataclasses)."""

    @classmethod
    def from_config(cls, d):
        """From a config section (``ConfigDict``, mapping or an instance already)."""
        if isinstance(d, cls):
            return d
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.metadata.get("section") is not None:
                v = f.metadata["section"].from_config(v)
            elif isinstance(v, list):
                v = tuple(v)
            elif hasattr(v, "to_dict") and not isinstance(v, Section):
                v = dict(v.to_dict())  # a free-form sub-dict (no section class)
            kw[f.name] = v
        return cls(**kw)

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Section) else v
        return out

    def __getitem__(self, key: str):
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: str) -> bool:
        return key in {f.name for f in dataclasses.fields(self)}

    def get(self, key: str, default=None):
        return getattr(self, key, default) if key in self else default

    def keys(self):
        return [f.name for f in dataclasses.fields(self)]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)

    @classmethod
    def config_dict(cls):
        """The section's defaults as an ``ml_collections.ConfigDict`` (nested sections and
        free-form dicts as ``ConfigDict`` too): the schema recipe files override."""
        import ml_collections
        c = ml_collections.ConfigDict()
        for f in dataclasses.fields(cls):
            sec = f.metadata.get("section")
            if sec is not None:
                c[f.name] = sec.config_dict()
            elif f.metadata.get("free_form"):
                c[f.name] = ml_collections.ConfigDict(f.default_factory())
            else:
                c[f.name] = (f.default_factory() if f.default is dataclasses.MISSING
                             else f.default)
        return c

    @classmethod
    def docs(cls, prefix: str = "") -> dict[str, str]:
        """Dotted key -> its one-line doc, sections included (``"rl"``, ``"rl.beta"``)."""
        out = {}
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            if f.metadata.get("doc"):
                out[key] = f.metadata["doc"]
            if f.metadata.get("section") is not None:
                out.update(f.metadata["section"].docs(key + "."))
        return out

    @classmethod
    def free_form_keys(cls, prefix: str = "") -> tuple[str, ...]:
        """Dotted keys of the free-form dicts (their keys are the user's)."""
        out = ()
        for f in dataclasses.fields(cls):
            if f.metadata.get("free_form"):
                out += (prefix + f.name,)
            if f.metadata.get("section") is not None:
                out += f.metadata["section"].free_form_keys(prefix + f.name + ".")
        return out


def require(c, where: str):
    """``c`` if it is a typed config; the library never reads a raw ``ConfigDict``."""
    if not isinstance(c, Section):
        raise TypeError(f"{where} takes the typed config: pass "
                        f"igpo_jax.configlib.validate(config) (or configlib.typed(config)), "
                        f"not a {type(c).__name__}")
    return c
