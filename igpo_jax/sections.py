"""Typed config sections: what the entry point turns the ``ml_collections`` config into.

Every section of the config (``sampler``, ``rl``, ``igpo``, ``optim``, ...) is a frozen
dataclass owned by the module that uses it (``sampling.SamplerSettings``,
``rl.grpo.RLConfig``, ``rl.igpo.IgpoConfig``, ``optim.OptimConfig``, ...). Each checks
its own fields when built and raises :class:`ConfigError` naming the key, the value and
the fix; checks that need two sections stay in ``configlib.validate``. Sections are
read by attribute (``c.rl.group_size``) and, for code that takes a mapping, by key
(``c.data["source"]``, ``.get``, ``.to_dict()``); they cannot be changed after the
conversion (``dataclasses.replace`` makes a changed copy).
"""

from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """A config value that cannot work, with the key and what to do about it."""


def check(ok: bool, key: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"config.{key}={value!r}: {fix}")


def sub(cls) -> dataclasses.Field:
    """A field holding a nested section of type ``cls``."""
    return dataclasses.field(metadata={"section": cls})


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


def require(c, where: str):
    """``c`` if it is a typed config; the library never reads a raw ``ConfigDict``."""
    if not isinstance(c, Section):
        raise TypeError(f"{where} takes the typed config: pass "
                        f"igpo_jax.configlib.validate(config) (or configlib.typed(config)), "
                        f"not a {type(c).__name__}")
    return c
