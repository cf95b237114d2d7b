"""Fit the stacked ensemble on the train split and predict every post.

Base learners get out-of-fold predictions over time-respecting folds of the TRAIN rows, the
meta-learner is fitted on those OOF predictions only, and each base learner is refitted on all
train rows (early-stopped on val) to predict val/test/predict posts. Val labels only stop the
refits; test labels only report.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from models.learners import create_learner
from models.metrics import regression_metrics
from models.stacking import StackedEnsemble
from models.train_gbdt import CATEGORICAL_SUFFIX


@dataclass(frozen=True)
class StackConfig:
    feature_groups: tuple[str, ...] = ("features_baseline", "features_user", "features_temporal", "features_text",
                                       "features_image_stats", "features_history")
    learners: tuple[str, ...] = ("lgbm", "catboost", "xgboost", "mlp")
    meta: str = "nnls"          # nnls (non-negative linear) or lgbm
    n_folds: int = 4
    scheme: str = "expanding"   # expanding window (default) or blocked (purged K-fold)
    gap_days: float = 0.0       # blocked scheme: days purged on both sides of the held-out block
    es_fraction: float = 0.1    # fold models early-stop on the latest share of their own window
    seed: int = 42
    learner_params: dict = field(default_factory=dict)  # name -> keyword arguments

    def ensemble(self, categorical: tuple[int, ...]) -> StackedEnsemble:
        unknown = set(self.learner_params) - set(self.learners)
        if unknown:
            raise ValueError(f"train_stack.learner_params names learners not in the stack: {sorted(unknown)}")
        base = {name: (lambda n=name: create_learner(n, self.learner_params.get(n), categorical))
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
    base = ens.predict_base(X)
    cols = {f"pred_{k}": v for k, v in base.items()}
    preds = frame.select("pid", "split", "label").with_columns(pred=pl.Series(ens.predict(X)),
                                                                **{k: pl.Series(v) for k, v in cols.items()})
    info = {"weights": ens.weights_, "intercept": ens.intercept_, "oof_metrics": ens.oof_metrics_,
            "fit_seconds": round(seconds, 1), "python_peak_mb": round(peak / 2**20, 1),
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_features": len(names),
            "best_iterations": {k: getattr(m, "best_iteration_", None) for k, m in ens.base_models_.items()}}
    return preds, ens, info


def learner_metrics(preds: pl.DataFrame) -> dict[str, dict[str, dict]]:
    """SRC/MAE/MSE per learner column (and the stack) per labelled split."""
    out: dict[str, dict[str, dict]] = {}
    for col in [c for c in preds.columns if c.startswith("pred")]:
        name = "stack" if col == "pred" else col.removeprefix("pred_")
        out[name] = {}
        for s in ("train", "val", "test"):
            part = preds.filter((pl.col("split") == s) & pl.col("label").is_not_null())
            out[name][s] = regression_metrics(part["label"].to_numpy(), part[col].to_numpy())
    return out
