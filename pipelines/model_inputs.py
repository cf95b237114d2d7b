"""The model-input frame of a run: feature groups and embedding tables joined on pid with split and label."""

from __future__ import annotations

import numpy as np
import polars as pl

from featurestore.feature_groups import read_model_inputs
from models.train_gbdt import assemble
from featurestore.paths import Paths


def load_inputs(paths: Paths, groups: tuple[str, ...]) -> tuple[pl.DataFrame, list[str], dict[str, list[str]], np.ndarray]:
    """(frame: pid, split, label + every column of ``groups``; column names; group -> its names; postdate)."""
    split = pl.read_parquet(paths.table("split"))
    features = [pl.from_arrow(read_model_inputs(paths, g)) for g in groups]
    frame, names = assemble(features, split, pl.read_parquet(paths.table("labels")))
    group_names = {g: [c for c in f.columns if c not in ("pid", "postdate")] for g, f in zip(groups, features)}
    postdate = frame.select("pid").join(split.select("pid", "postdate"), on="pid", how="left")["postdate"].to_numpy()
    return frame, names, group_names, postdate
