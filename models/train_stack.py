"""Fit the stacked ensemble on the train split and predict every post.

Base learners get out-of-fold predictions over time-respecting folds of the TRAIN rows, the
meta-learner is fitted on those OOF predictions only, and each base learner is refitted on all
train rows (early-stopped on val) to predict val/test/predict posts. Val labels only stop the
refits and calibrate the prediction interval (models.intervals); test labels only report.
"""

from __future__ import annotations

import time
from functools import partial
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from models.learners import create_learner
from models.metrics import regression_metrics
from models.intervals import ConformalInterval
from models.stacking import StackedEnsemble, fit_internal_es
from models.train_gbdt import CATEGORICAL_SUFFIX, DEFAULT_FEATURE_GROUPS

INTERVAL_COLUMNS = ("interval_lo", "interval_hi")  # conformalised bounds (models.intervals)


@dataclass(frozen=True)
class StackConfig:
    feature_groups: tuple[str, ...] = DEFAULT_FEATURE_GROUPS
    learners: tuple[str, ...] = ("lgbm", "catboost", "xgboost", "mlp")
    meta: str = "nnls"          # nnls (non-negative linear) or lgbm
    n_folds: int = 4
    scheme: str = "expanding"   # expanding window (default) or blocked (purged K-fold)
    gap_days: float = 0.0       # blocked scheme: days purged on both sides of the held-out block
    es_fraction: float = 0.1    # fold models early-stop on the latest share of their own window
    seed: int = 42
    learner_params: dict = field(default_factory=dict)  # name -> keyword arguments
    quantiles: tuple[float, ...] = (0.1, 0.9)  # LightGBM quantile models -> conformalised interval of q90 - q10

    def ensemble(self, categorical: tuple[int, ...], names: tuple[str, ...] = ()) -> StackedEnsemble:
        unknown = set(self.learner_params) - set(self.learners)
        if unknown:
            raise ValueError(f"train_stack.learner_params names learners not in the stack: {sorted(unknown)}")
        base = {name: partial(create_learner, name, self.learner_params.get(name), categorical, tuple(names))
                for name in self.learners}
        return StackedEnsemble(base, meta=self.meta, n_folds=self.n_folds, scheme=self.scheme,
                               gap=self.gap_days * 86400.0, es_fraction=self.es_fraction, seed=self.seed)


def fit_stack(frame: pl.DataFrame, names: list[str], postdate: np.ndarray, cfg: StackConfig
              ) -> tuple[pl.DataFrame, StackedEnsemble, dict]:
    """Fit the stack; returns (predictions with one column per learner, the ensemble, info)."""
    X = frame.select(names).to_numpy().astype(np.float32)
    y = frame["label"].to_numpy()
    split = frame["split"].to_numpy()
    tr, va = split == "train", split == "val"
    cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
    tracemalloc.start()
    t0 = time.perf_counter()
    ens = cfg.ensemble(cats, tuple(names)).fit(X[tr], y[tr], postdate[tr], X[va], y[va])
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    interval = fit_interval(X, y, postdate, tr, va, cats, cfg)
    base = ens.predict_base(X)
    cols = {f"pred_{k}": v for k, v in base.items()}
    if interval is not None:
        cols |= dict(zip(INTERVAL_COLUMNS, interval.predict(X)))
    preds = frame.select("pid", "split", "label").with_columns(pred=pl.Series(ens.predict(X)),
                                                                **{k: pl.Series(v) for k, v in cols.items()})
    info = {"weights": ens.weights_, "intercept": ens.intercept_, "oof_metrics": ens.oof_metrics_,
            "fit_seconds": round(seconds, 1), "python_peak_mb": round(peak / 2**20, 1),
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_features": len(names),
            "best_iterations": {k: getattr(m, "best_iteration_", None) for k, m in ens.base_models_.items()}}
    if interval is not None:
        info["interval"] = {"coverage": interval.coverage, "margin": interval.margin_,
                            "n_calibration": interval.n_calibration_, **interval.raw_coverage_,
                            **{s: interval_coverage(preds.filter(pl.col("split") == s)) for s in ("val", "test")}}
    bundle = StackBundle(ensemble=ens, interval=interval, feature_names=list(names),
                         feature_groups=cfg.feature_groups)
    return preds, bundle, info


def fit_interval(X: np.ndarray, y: np.ndarray, postdate: np.ndarray, tr: np.ndarray, va: np.ndarray,
                 cats: tuple[int, ...], cfg: StackConfig) -> ConformalInterval | None:
    """LightGBM quantile models on the train rows (early-stopped on their latest share), calibrated on val."""
    if not cfg.quantiles:
        return None
    if len(cfg.quantiles) != 2 or not 0 < cfg.quantiles[0] < cfg.quantiles[1] < 1:
        raise ValueError(f"train_stack.quantiles must be two increasing levels in (0, 1); got {cfg.quantiles}")
    if not va.any():
        raise ValueError("train_stack: the prediction interval is calibrated on the val split, which is empty")
    rows = np.flatnonzero(tr)
    rows = rows[np.argsort(postdate[rows], kind="stable")]  # chronological: early stopping on the latest share
    lo, hi = (fit_internal_es(partial(create_learner, "lgbm", {**cfg.learner_params.get("lgbm", {}), "quantile": q},
                                      cats), X, y, rows, cfg.es_fraction) for q in cfg.quantiles)
    return ConformalInterval(lo, hi, coverage=cfg.quantiles[1] - cfg.quantiles[0]).calibrate(X[va], y[va])


@dataclass
class StackBundle:
    """Everything needed to predict new posts: the fitted stack, the interval, feature order."""

    ensemble: StackedEnsemble
    interval: ConformalInterval | None
    feature_names: list[str]
    feature_groups: tuple[str, ...]

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """(N, F) features in ``feature_names`` order -> {"pred", "interval_lo", "interval_hi"}."""
        out = {"pred": self.ensemble.predict(X)}
        if self.interval is not None:
            out |= dict(zip(INTERVAL_COLUMNS, self.interval.predict(X)))
        return out


def interval_coverage(part: pl.DataFrame) -> dict | None:
    """Share of labels inside [interval_lo, interval_hi], below it and above it."""
    part = part.filter(pl.col("label").is_not_null())
    if part.height == 0:
        return None
    y = part["label"].to_numpy()
    lo, hi = part["interval_lo"].to_numpy(), part["interval_hi"].to_numpy()
    return {"inside": float(((y >= lo) & (y <= hi)).mean()), "below": float((y < lo).mean()),
            "above": float((y > hi).mean()), "mean_width": float((hi - lo).mean())}


def learner_metrics(preds: pl.DataFrame) -> dict[str, dict[str, dict]]:
    """SRC/MAE/MSE per learner column (and the stack) per labelled split."""
    out: dict[str, dict[str, dict]] = {}
    for col in [c for c in preds.columns if c == "pred" or c.startswith("pred_")]:
        name = "stack" if col == "pred" else col.removeprefix("pred_")
        out[name] = {}
        for s in ("train", "val", "test"):
            part = preds.filter((pl.col("split") == s) & pl.col("label").is_not_null())
            out[name][s] = regression_metrics(part["label"].to_numpy(), part[col].to_numpy())
    return out
