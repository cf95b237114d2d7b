"""Fit a GBDT on the train split, early-stop on val, predict every post.

Only train rows are fitted; val rows only pick the number of trees; test rows only report.
With ``refit_full`` (the ``smpp run`` submission mode) a second model is fitted on train+val
with the chosen number of trees scaled by the data size (``models.stacking.refit_fixed``, as the
stack's refit), and it predicts test/predict posts; val posts keep the validation fit's predictions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from models.gbdt import LightGBMRegressor
from models.matrix import join_features, to_matrix
from models.stacking import refit_fixed

CATEGORICAL_SUFFIX = "_code"  # integer-coded columns the GBDTs treat as categorical


# The models' default inputs (params.yaml repeats them): every group but none of the embeddings.
DEFAULT_FEATURE_GROUPS = ("features_baseline", "features_user", "features_crawled", "features_temporal",
                          "features_text", "features_image_stats", "features_history", "features_sequence")


@dataclass(frozen=True)
class TrainConfig:
    feature_groups: tuple[str, ...] = DEFAULT_FEATURE_GROUPS
    learning_rate: float = 0.05
    num_leaves: int = 63
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    n_estimators: int = 3000
    early_stopping_rounds: int = 100
    num_threads: int = 2
    seed: int = 42
    refit_full: bool = False

    def estimator(self, categorical: tuple[int, ...]) -> LightGBMRegressor:
        kw = {k: v for k, v in asdict(self).items() if k not in ("feature_groups", "refit_full")}
        return LightGBMRegressor(categorical_features=categorical, **kw)


def assemble(features: list[pl.DataFrame], split: pl.DataFrame, labels: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Join feature groups, split and labels on pid; returns (frame sorted by pid, feature column names)."""
    frame, names = join_features(features, split.select("pid", "split"))
    return frame.join(labels.select("pid", "label"), on="pid", how="left").sort("pid"), names


def fit_predict(frame: pl.DataFrame, names: list[str], cfg: TrainConfig) -> tuple[pl.DataFrame, LightGBMRegressor, dict]:
    """Fit on train (early stopping on val) and predict all rows; returns (preds, model, info)."""
    X = to_matrix(frame, names)
    y = frame["label"].to_numpy()
    split = frame["split"].to_numpy()
    tr, va = split == "train", split == "val"
    cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
    t0 = time.perf_counter()
    model = cfg.estimator(cats).fit(X[tr], y[tr], X[va], y[va])
    pred = model.predict(X)
    info = {"best_iteration": model.best_iteration_, "fit_seconds": round(time.perf_counter() - t0, 2),
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "features": names, "refit_full": cfg.refit_full}
    if cfg.refit_full:
        full = tr | va
        final, rounds = refit_fixed(lambda: cfg.estimator(cats), X[full], y[full], model.best_iteration_,
                                    int(tr.sum()))
        later = np.isin(split, ["test", "predict"])
        pred[later] = final.predict(X[later])
        info["refit_rounds"] = rounds
        model = final
    imp = model.booster_.feature_importance(importance_type="gain")
    info["importance_gain"] = {n: round(float(v), 3) for n, v in sorted(zip(names, imp), key=lambda t: -t[1])}
    preds = frame.select("pid", "split", "label").with_columns(pred=pl.Series(pred, dtype=pl.Float64))
    return preds, model, info
