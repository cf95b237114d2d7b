"""Column layout and train-fitted preprocessing of the PPCL estimator's 2-D float X.

Roles of X's columns (indices): text and image embeddings, user numeric features, user
categorical codes, the 3 category-tree codes (category, subcategory, concept) and the user id
code. Codes are non-negative integers stored as floats; NaN or a negative value is unknown.
Every statistic here is computed from the rows given to ``fit`` (the train split) only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CATEGORY_NAMES = ("base_cat_category_code", "base_cat_subcategory_code", "base_cat_concept_code")
USER_ID_NAME = "id_user_code"
TEXT_PREFIXES = ("emb_minilm_", "emb_text_")
IMAGE_PREFIXES = ("img_", "emb_image_")
USER_PREFIXES = ("user_", "crawl_")
INFLUENCE_MARK = "follower"  # influence = follower columns where present (the paper's FollowerCount)


@dataclass(frozen=True)
class Layout:
    """Column indices of each role; ``category`` is () or 3 columns, ``user_id`` None or one column."""

    text: tuple[int, ...]
    image: tuple[int, ...]
    numeric: tuple[int, ...]
    categorical: tuple[int, ...]
    category: tuple[int, ...]
    user_id: int | None
    influence: tuple[int, ...]


def _indices(value, d: int, role: str) -> tuple[int, ...]:
    out = tuple(int(i) for i in (value or ()))
    if any(i < 0 or i >= d for i in out):
        raise ValueError(f"{role}: column indices must lie in [0, {d}), got {out}")
    if len(set(out)) != len(out):
        raise ValueError(f"{role}: repeated column indices {out}")
    return out


def resolve_layout(d: int, *, text=None, image=(), numeric=(), categorical=(), category=None, user_id=None,
                   influence=None) -> Layout:
    """Check the roles against d columns; ``text=None`` takes every column no other role names.

    ``influence`` (columns clustered for UISD) defaults to the user numeric columns.
    """
    roles = {"image_columns": _indices(image, d, "image_columns"),
             "user_numeric_columns": _indices(numeric, d, "user_numeric_columns"),
             "user_categorical_columns": _indices(categorical, d, "user_categorical_columns"),
             "category_columns": _indices(category, d, "category_columns"),
             "user_id_column": _indices(() if user_id is None else (user_id,), d, "user_id_column")}
    if category is not None and len(roles["category_columns"]) != 3:
        raise ValueError("category_columns: exactly 3 columns (category, subcategory, concept codes)")
    taken = [i for cols in roles.values() for i in cols]
    roles["text_columns"] = (tuple(i for i in range(d) if i not in set(taken)) if text is None
                             else _indices(text, d, "text_columns"))
    taken += [i for i in roles["text_columns"] if text is not None]
    if len(set(taken)) != len(taken):
        raise ValueError("a column may play one role only (text, image, user numeric, user categorical, "
                         "category, user id)")
    if not roles["text_columns"] and not roles["image_columns"]:
        raise ValueError("the post encoder needs text_columns or image_columns")
    infl = roles["user_numeric_columns"] if influence is None else _indices(influence, d, "influence_columns")
    return Layout(roles["text_columns"], roles["image_columns"], roles["user_numeric_columns"],
                  roles["user_categorical_columns"], roles["category_columns"],
                  roles["user_id_column"][0] if roles["user_id_column"] else None, infl)


def layout_from_names(names: Sequence[str], influence: Sequence[str] | None = None) -> dict:
    """Layout keyword arguments of ``PPCLRegressor`` from feature names; ValueError naming what is missing.

    text: ``emb_minilm_*`` / ``emb_text_*``; image: ``img_*`` / ``emb_image_*``; user numeric:
    ``user_*`` / ``crawl_*`` not ending ``_code``; user categoricals: ``user_*_code``; category:
    the three ``base_cat_*_code``; user id: ``id_user_code``. ``influence`` names the columns
    clustered for UISD; by default the user numeric columns containing "follower" if any, else
    all user numeric columns.
    """
    names = [str(n) for n in names]
    pos = {n: i for i, n in enumerate(names)}
    text = [i for i, n in enumerate(names) if n.startswith(TEXT_PREFIXES)]
    image = [i for i, n in enumerate(names) if n.startswith(IMAGE_PREFIXES)]
    numeric = [i for i, n in enumerate(names) if n.startswith(USER_PREFIXES) and not n.endswith("_code")]
    categorical = [i for i, n in enumerate(names) if n.startswith("user_") and n.endswith("_code")]
    missing = [n for n in (*CATEGORY_NAMES, USER_ID_NAME) if n not in pos]
    if not text and not image:
        missing.append("text or image columns (emb_minilm_* / emb_text_* / img_* / emb_image_*)")
    if not numeric:
        missing.append("user numeric columns (user_* / crawl_*)")
    if influence is None:
        infl = [i for i in numeric if INFLUENCE_MARK in names[i]] or numeric
    else:
        missing += [f"influence column {n}" for n in influence if n not in pos]
        infl = [pos[n] for n in influence if n in pos]
    if missing:
        raise ValueError(f"PPCLRegressor.from_feature_names: missing {', '.join(missing)}")
    return dict(text_columns=tuple(text), image_columns=tuple(image), user_numeric_columns=tuple(numeric),
                user_categorical_columns=tuple(categorical), category_columns=tuple(pos[n] for n in CATEGORY_NAMES),
                user_id_column=pos[USER_ID_NAME], influence_columns=tuple(infl))


def codes(X: np.ndarray) -> np.ndarray:
    """(n, k) float codes -> (n, k) int64, -1 where NaN, infinite or negative."""
    X = np.asarray(X, dtype=np.float64)
    ok = np.isfinite(X) & (X >= 0)
    return np.where(ok, np.where(ok, X, 0).astype(np.int64), -1)


def fit_minmax(X: np.ndarray) -> dict[str, np.ndarray]:
    """Train statistics of (n, d) X: {'min', 'span', 'fill'}; fill = the scaled train median (NaN)."""
    X = np.where(np.isfinite(X), X, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
        lo, hi = np.nan_to_num(lo), np.nan_to_num(hi)
        span = np.where(hi > lo, hi - lo, 1.0)
        fill = np.nan_to_num(np.nanmedian(np.clip((X - lo) / span, 0.0, 1.0), axis=0))
    return {"min": lo, "span": span, "fill": fill}


def apply_minmax(X: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """(n, d) -> (n, d) in [0, 1]: (x - train min) / train span, clipped; missing -> scaled train median."""
    Z = np.clip((np.asarray(X, dtype=np.float64) - stats["min"]) / stats["span"], 0.0, 1.0)
    return np.where(np.isfinite(Z), Z, stats["fill"])


def fit_vocabularies(C: np.ndarray) -> list[np.ndarray]:
    """(n, k) float codes -> per column, the sorted known codes seen in training."""
    return [np.unique(c[c >= 0]) for c in codes(C).T]


def apply_vocabularies(C: np.ndarray, vocabularies: list[np.ndarray]) -> np.ndarray:
    """(n, k) float codes -> (n, k) int64 embedding indices: 1 + position in the train vocabulary, 0 = unknown."""
    C = codes(C)
    out = np.zeros(C.shape, dtype=np.int64)
    for k, vocab in enumerate(vocabularies):
        if len(vocab):
            at = np.clip(np.searchsorted(vocab, C[:, k]), 0, len(vocab) - 1)
            out[:, k] = np.where(vocab[at] == C[:, k], at + 1, 0)
    return out
