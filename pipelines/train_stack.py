"""Stage train_stack: LightGBM, CatBoost, XGBoost and an MLP head stacked on time-respecting
out-of-fold predictions (meta-learner: non-negative linear by default) -> predictions for every post."""

from __future__ import annotations

import logging

import joblib

import polars as pl

from featurestore.config import config_from_dict
from models.train_gbdt import assemble
from models.train_stack import StackConfig, fit_stack
from pipelines.paths import Paths
from pipelines.stage import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("train_stack",)


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(StackConfig, "train_stack", params.get("train_stack"))
    split = pl.read_parquet(paths.table("split"))
    features = [pl.read_parquet(paths.table(g)) for g in cfg.feature_groups]
    frame, names = assemble(features, split, pl.read_parquet(paths.table("labels")))
    postdate = frame.select("pid").join(split.select("pid", "postdate"), on="pid", how="left")["postdate"].to_numpy()
    preds, bundle, info = fit_stack(frame, names, postdate, cfg)
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
