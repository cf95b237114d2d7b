"""Dataclass configs read from ``params.yaml`` sections: defaults in code, unknown keys an error."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params file or section that cannot be used; the message names the file or section and the key."""


def config_from_dict(cls: type[T], section: str, values: dict[str, Any] | None) -> T:
    """Build ``cls`` from a params section; a key the dataclass does not know raises ValueError."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ParamsError(f"params section '{section}': unknown key(s) {unknown}; known: {sorted(known)}")
    for f in fields(cls):  # YAML lists -> tuples where the default is a tuple (frozen dataclasses)
        if isinstance(values.get(f.name), list) and isinstance(getattr(cls, f.name, None), tuple):
            values[f.name] = tuple(values[f.name])
    try:
        return cls(**values)
    except ParamsError:
        raise
    except ValueError as e:  # the config's own checks (__post_init__): a bad value of this section
        raise ParamsError(str(e)) from e


def load_params(path: Path | str | None) -> dict[str, Any]:
    """Read a params YAML file (``{}`` when ``path`` is None)."""
    if path is None:
        return {}
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ParamsError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from e
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: params must be a mapping of sections")
    return data


def merge_params(base: dict, override: dict) -> dict:
    """Recursive dict merge: values of ``override`` win."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge_params(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
