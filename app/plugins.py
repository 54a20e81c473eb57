"""Adapters found by name: providers (`prod_access.providers`) and ticket trackers
(`prod_access.trackers`) are classes registered as entry points, with the built-ins also found
in a checkout whose package metadata is not installed. Loaded once at start; an unknown name,
one that cannot be imported, or a class without a pydantic `Config` and the calls its kind
needs fails loudly, naming what is wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel


def plugin_class(
    kind: str, group: str, name: str, builtin: Mapping[str, str], required: Sequence[str]
) -> Any:
    """The class registered under `name` in `group` (entry points first, then `builtin`, as
    "module:attribute"); KeyError saying why for anything that cannot serve as a `kind`."""
    registered = {e.name: e for e in entry_points(group=group)}
    target = registered[name].value if name in registered else builtin.get(name)
    if target is None:
        known = sorted(set(registered) | set(builtin))
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    try:
        if name in registered:
            cls = registered[name].load()
        else:
            module, _, attr = target.partition(":")
            cls = getattr(import_module(module), attr)
    except Exception as exc:
        raise KeyError(
            f"{kind} {name!r} ({target}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from None
    missing = [call for call in required if not callable(getattr(cls, call, None))]
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        missing.insert(0, "Config (a pydantic model)")
    if missing:
        raise KeyError(f"{kind} {name!r} ({target}) lacks {', '.join(missing)}")
    return cls
