"""Stage train_stack: LightGBM, CatBoost, XGBoost and an MLP head stacked on time-respecting
out-of-fold predictions (meta-learner: non-negative linear by default) -> predictions for every post."""

from __future__ import annotations

import logging

import joblib
import numpy as np

import polars as pl

from featurestore.config import config_from_dict
from featurestore.feature_groups import read_model_inputs
from models.train_gbdt import assemble
from models.train_stack import StackConfig, fit_stack
from pipelines.paths import Paths
from pipelines.stage import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("train_stack",)


def load_inputs(paths: Paths, groups: tuple[str, ...]) -> tuple[pl.DataFrame, list[str], dict[str, list[str]], np.ndarray]:
    """(frame: pid, split, label + every column of ``groups``; column names; group -> its names; postdate)."""
    split = pl.read_parquet(paths.table("split"))
    features = [pl.from_arrow(read_model_inputs(paths, g)) for g in groups]
    frame, names = assemble(features, split, pl.read_parquet(paths.table("labels")))
    group_names = {g: [c for c in f.columns if c not in ("pid", "postdate")] for g, f in zip(groups, features)}
    postdate = frame.select("pid").join(split.select("pid", "postdate"), on="pid", how="left")["postdate"].to_numpy()
    return frame, names, group_names, postdate


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(StackConfig, "train_stack", params.get("train_stack"))
    frame, names, group_names, postdate = load_inputs(paths, cfg.all_groups)
    preds, bundle, info = fit_stack(frame, names, postdate, cfg, group_names)
    out = paths.table("predictions_stack")
    out.parent.mkdir(parents=True, exist_ok=True)
    preds.write_parquet(out, compression="zstd")
    paths.stack_model.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle, paths.stack_model)
    write_json(paths.reports / "train_stack.json", {k: v for k, v in info.items() if k not in ("fit_seconds", "python_peak_mb")})
    log.info("train_stack: %s, weights %s, fit %.0f s", ", ".join(cfg.learners), info["weights"], info["fit_seconds"])
    return info


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
