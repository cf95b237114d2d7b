"""Fit the stacked ensemble on the train split and predict every post.

Base learners get out-of-fold predictions over time-respecting folds of the TRAIN rows, the
meta-learner is fitted on those OOF predictions only, and each base learner is refitted on all
train rows (early-stopped on val) to predict val/test/predict posts. Val labels only stop the
refits; test labels only report.
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
from models.stacking import StackedEnsemble
from models.train_gbdt import CATEGORICAL_SUFFIX, DEFAULT_FEATURE_GROUPS


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
    quantiles: tuple[float, ...] = (0.1, 0.9)  # LightGBM pinball-loss models for a prediction interval

    def ensemble(self, categorical: tuple[int, ...]) -> StackedEnsemble:
        unknown = set(self.learner_params) - set(self.learners)
        if unknown:
            raise ValueError(f"train_stack.learner_params names learners not in the stack: {sorted(unknown)}")
        base = {name: partial(create_learner, name, self.learner_params.get(name), categorical)  # picklable
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
    ens = cfg.ensemble(cats).fit(X[tr], y[tr], postdate[tr], X[va], y[va])
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    quantile_models = {q: create_learner("lgbm", {**cfg.learner_params.get("lgbm", {}), "quantile": q}, cats)
                       .fit(X[tr], y[tr], X[va], y[va]) for q in cfg.quantiles}
    base = ens.predict_base(X)
    cols = {f"pred_{k}": v for k, v in base.items()}
    cols |= {interval_column(q): m.predict(X) for q, m in quantile_models.items()}
    preds = frame.select("pid", "split", "label").with_columns(pred=pl.Series(ens.predict(X)),
                                                                **{k: pl.Series(v) for k, v in cols.items()})
    info = {"weights": ens.weights_, "intercept": ens.intercept_, "oof_metrics": ens.oof_metrics_,
            "fit_seconds": round(seconds, 1), "python_peak_mb": round(peak / 2**20, 1),
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_features": len(names),
            "best_iterations": {k: getattr(m, "best_iteration_", None) for k, m in ens.base_models_.items()}}
    info["interval_coverage"] = {s: interval_coverage(preds.filter(pl.col("split") == s), cfg.quantiles)
                                 for s in ("val", "test")}
    bundle = StackBundle(ensemble=ens, quantile_models=quantile_models, feature_names=list(names),
                         feature_groups=cfg.feature_groups)
    return preds, bundle, info


@dataclass
class StackBundle:
    """Everything needed to predict new posts: the fitted stack, interval models, feature order."""

    ensemble: StackedEnsemble
    quantile_models: dict
    feature_names: list[str]
    feature_groups: tuple[str, ...]

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """(N, F) features in ``feature_names`` order -> {"pred", "interval_q10", ...}."""
        out = {"pred": self.ensemble.predict(X)}
        out |= {interval_column(q): m.predict(X) for q, m in self.quantile_models.items()}
        return out


def interval_column(q: float) -> str:
    return f"interval_q{round(q * 100):02d}"


def interval_coverage(part: pl.DataFrame, quantiles: tuple[float, ...]) -> dict | None:
    """Share of labels at or below each quantile prediction, and inside the outer pair."""
    part = part.filter(pl.col("label").is_not_null())
    if part.height == 0 or not quantiles:
        return None
    y = part["label"].to_numpy()
    out = {interval_column(q): float((y <= part[interval_column(q)].to_numpy()).mean()) for q in quantiles}
    lo, hi = part[interval_column(min(quantiles))].to_numpy(), part[interval_column(max(quantiles))].to_numpy()
    out["inside"] = float(((y >= lo) & (y <= hi)).mean())
    return out


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
