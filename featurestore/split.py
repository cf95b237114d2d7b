"""Chronological train/val/test split of the labelled posts; unlabelled posts are ``predict``.

Labelled posts are ordered by (postdate, pid) and cut at the cumulative ``fractions``, so every
validation post is published no earlier than every training post and every test post no earlier
than every validation post. Posts from the unlabelled test files form the ``predict`` split.
``label_visible`` marks the labels that feature computations may read: those of the splits in
``SplitConfig.label_visible`` (the train split's by default; submit mode adds val, so the posts
to predict see every labelled post). Test labels never become visible: they only report. The
feature groups read a visible label only for posts published strictly later (point in time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


VISIBLE_SPLITS = (("train",), ("train", "val"))  # the allowed split.label_visible values


@dataclass(frozen=True)
class SplitConfig:
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test of the labelled posts
    label_visible: tuple[str, ...] = ("train",)  # splits whose labels features may read; submit mode: train, val

    def __post_init__(self) -> None:
        f = self.fractions
        if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1) > 1e-9 or f[0] <= 0 or f[1] <= 0:
            raise ValueError(f"split.fractions must be 3 non-negative numbers summing to 1 with train, val > 0; got {f}")
        if tuple(self.label_visible) not in VISIBLE_SPLITS:
            raise ValueError(f"split.label_visible must be [train] or [train, val] (test labels only report); "
                             f"got {list(self.label_visible)}")


def chronological_split(posts: pa.Table, config: SplitConfig) -> pa.Table:
    """posts(pid, postdate, labelled) -> split(pid, postdate, split, label_visible), sorted by pid."""
    pid = posts["pid"].to_numpy()
    date = posts["postdate"].to_numpy()
    labelled = posts["labelled"].to_numpy(zero_copy_only=False)
    split = np.full(len(pid), "predict", dtype=object)
    idx = np.flatnonzero(labelled)
    order = idx[np.lexsort((pid[idx], date[idx]))]  # by postdate, ties by pid
    n = len(order)
    cut_train = int(round(config.fractions[0] * n))
    cut_val = n if config.fractions[2] == 0 else int(round((config.fractions[0] + config.fractions[1]) * n))
    split[order[:cut_train]] = "train"
    split[order[cut_train:cut_val]] = "val"
    split[order[cut_val:]] = "test"
    table = pa.table({"pid": pid, "postdate": date, "split": pa.array(split.tolist(), pa.string()),
                      "label_visible": pa.array(np.isin(split, list(config.label_visible)))})
    return table.sort_by("pid")


def split_summary(split: pa.Table) -> dict:
    """Counts and date ranges per split (for logs and reports)."""
    out = {}
    names = np.asarray(split["split"].to_pylist())
    dates = split["postdate"].to_numpy()
    for name in ("train", "val", "test", "predict"):
        m = names == name
        out[name] = {"rows": int(m.sum()), "first_postdate": int(dates[m].min()) if m.any() else None,
                     "last_postdate": int(dates[m].max()) if m.any() else None}
    return out
