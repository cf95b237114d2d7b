"""Fitted transforms as files: what a stage learned on the train split, for serving to load.

A stage saves its fitted object (``TextModel``, ``EngineeredEncoder``, ...) with joblib under
``Paths.fitted(name)``; serving loads it and fits nothing. Loading checks the object's type, so
a file from another stage is refused instead of failing later.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import joblib

from featurestore.atomic import atomic_write

T = TypeVar("T")


def save_fitted(obj: object, path: Path) -> Path:
    """Write ``obj`` to ``path`` with joblib (atomically); returns ``path``."""
    with atomic_write(path) as tmp:
        joblib.dump(obj, tmp)
    return Path(path)


def load_fitted(path: Path, kind: type[T]) -> T:
    """The object saved at ``path``; it must be a ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no fitted {kind.__name__}; run the stage that writes it first")
    obj = joblib.load(path)
    if not isinstance(obj, kind):
        raise TypeError(f"{path}: holds a {type(obj).__name__}, expected a {kind.__name__}")
    return obj
