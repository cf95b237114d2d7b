"""Fit the stacked ensemble on the train split and predict every post.

Base learners get out-of-fold predictions over time-respecting folds of the TRAIN rows, the
meta-learner is fitted on those OOF predictions only, and each base learner is refitted on all
train rows (early-stopped on val) to predict val/test/predict posts. Val labels only stop the
refits and calibrate the prediction interval (models.intervals); test labels only report.

With ``refit_full`` (``smpp run --mode submit``) every base learner and both quantile models are
then refitted on all labelled rows (train + val) with their validation fit's iteration count
scaled by the row ratio (``models.stacking.refit_fixed``; epoch-based heads keep their epoch
count, an epoch already growing with the rows); the meta-learner weights and the interval's
margin stay those fitted on train OOF / calibrated on val. Those refits predict test/predict
posts (and are the saved bundle); val posts keep the validation fit's predictions, so val
metrics stay out of sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from models.learners import LEARNERS, create_learner
from models.matrix import to_matrix
from models.intervals import ConformalInterval
from models.stacking import StackedEnsemble, internal_es_rows, run_fits
from models.train_gbdt import CATEGORICAL_SUFFIX, DEFAULT_FEATURE_GROUPS

INTERVAL_COLUMNS = ("interval_lo", "interval_hi")  # conformalised bounds (models.intervals)
LATER_SPLITS = ("test", "predict")  # the posts a refit on all labelled rows predicts

# Learners whose best_iteration_ counts epochs (passes over the rows), not trees: a refit on more
# rows keeps the epoch count (its optimiser steps already grow with the rows). Every learner of
# models.learners.LEARNERS is either here or tree-based (a test checks each is classified).
EPOCH_LEARNERS = frozenset({"mlp", "sequence", "ppcl"})
TREE_LEARNERS = frozenset({"lgbm", "catboost", "xgboost"})


# PPCL's inputs: frozen MiniLM text embedding, image statistics, user fields and id, category codes.
PPCL_FEATURE_GROUPS = ("features_baseline", "features_user", "features_crawled", "features_image_stats",
                       "features_ids", "embed_minilm")


@dataclass(frozen=True)
class StackConfig:
    feature_groups: tuple[str, ...] = DEFAULT_FEATURE_GROUPS
    learners: tuple[str, ...] = ("lgbm", "catboost", "xgboost", "mlp", "ppcl")
    meta: str = "nnls"          # nnls (non-negative linear) or lgbm
    n_folds: int = 4
    scheme: str = "expanding"   # expanding window (default) or blocked (purged K-fold)
    gap_days: float = 0.0       # blocked scheme: days purged on both sides of the held-out block
    es_fraction: float = 0.1    # fold models early-stop on the latest share of their own window
    seed: int = 42
    learner_params: dict = field(default_factory=dict)  # name -> keyword arguments
    fold_params: dict = field(default_factory=dict)  # name -> overrides of learner_params for the OOF fold fits only
    quantiles: tuple[float, ...] = (0.1, 0.9)  # LightGBM quantile models -> conformalised interval of q90 - q10
    learner_feature_groups: dict = field(default_factory=lambda: {"ppcl": list(PPCL_FEATURE_GROUPS)})
    # ^ learner -> its own groups; a learner not named reads feature_groups
    refit_full: bool = False    # submit mode: refit every learner on train + val after the validation fit

    def __post_init__(self) -> None:
        # entries of known learners not in the stack are kept unused (switching a learner on is one list edit)
        for key in ("learner_params", "fold_params", "learner_feature_groups"):
            unknown = set(getattr(self, key)) - set(LEARNERS) - ({"interval"} if key == "learner_feature_groups" else set())
            if unknown:
                raise ValueError(f"train_stack.{key} names unknown learners {sorted(unknown)}; known: {sorted(LEARNERS)}")
        unknown = set(self.learners) - set(LEARNERS)
        if unknown:
            raise ValueError(f"train_stack.learners: unknown {sorted(unknown)}; known: {sorted(LEARNERS)}")
        unclassified = set(self.learners) - EPOCH_LEARNERS - TREE_LEARNERS
        if self.refit_full and unclassified:  # a new learner must say how its refit's iterations scale
            raise ValueError(f"train_stack.refit_full: learners {sorted(unclassified)} are in neither "
                             "EPOCH_LEARNERS nor TREE_LEARNERS (models/train_stack.py)")

    @property
    def all_groups(self) -> tuple[str, ...]:
        """Every group some learner in the stack reads, ``feature_groups`` first: the stack matrix's columns.

        ``learner_feature_groups`` entries of learners not in ``learners`` are ignored (so a stack
        without PPCL does not load the MiniLM table).
        """
        out = list(self.feature_groups)
        for learner, groups in self.learner_feature_groups.items():
            if learner in self.learners:
                out += [g for g in groups if g not in out]
        return tuple(out)

    def learner_columns(self, group_names: dict[str, list[str]], names: list[str]) -> dict[str, tuple[int, ...] | None]:
        """Learner -> positions in ``names`` of its groups' columns; None: it reads every column."""
        pos = {n: i for i, n in enumerate(names)}
        out = {}
        for learner in (*self.learners, "interval"):
            groups = self.learner_feature_groups.get(learner, self.feature_groups)
            missing = [g for g in groups if g not in group_names]
            if missing:
                raise ValueError(f"train_stack: learner {learner} reads groups that were not loaded: {missing}")
            cols = tuple(sorted(pos[n] for g in groups for n in group_names[g]))
            out[learner] = None if len(cols) == len(names) else cols
        return out

    def ensemble(self, categorical: tuple[int, ...], names: tuple[str, ...] = (),
                 columns: dict[str, tuple[int, ...] | None] | None = None) -> StackedEnsemble:
        columns = columns or {}
        def learner(name: str, params: dict | None):
            return partial(create_learner, name, params, categorical, tuple(names), columns.get(name))

        base = {name: learner(name, self.learner_params.get(name)) for name in self.learners}
        folds = {name: learner(name, {**self.learner_params.get(name, {}), **over})
                 for name, over in self.fold_params.items() if over and name in self.learners}
        return StackedEnsemble(base, meta=self.meta, n_folds=self.n_folds, scheme=self.scheme,
                               gap=self.gap_days * 86400.0, es_fraction=self.es_fraction, seed=self.seed,
                               fold_learners=folds)


def fit_stack(frame: pl.DataFrame, names: list[str], postdate: np.ndarray, cfg: StackConfig,
              group_names: dict[str, list[str]] | None = None) -> tuple[pl.DataFrame, "StackBundle", dict]:
    """Fit the stack; returns (predictions with one column per learner, the fitted bundle, info).

    ``group_names``: group -> its column names (needed when ``cfg.learner_feature_groups`` gives
    a learner other groups than ``cfg.feature_groups``); by default every learner reads ``names``.
    """
    X = to_matrix(frame, names)
    columns = cfg.learner_columns(group_names, names) if group_names else {}
    y = frame["label"].to_numpy()
    split = frame["split"].to_numpy()
    tr, va = split == "train", split == "val"
    cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
    t0 = time.perf_counter()
    ens = cfg.ensemble(cats, tuple(names), columns).fit(X[tr], y[tr], postdate[tr], X[va], y[va])
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    interval = fit_interval(X, y, postdate, tr, va, cats, cfg, tuple(names), columns.get("interval"))
    timings = {**ens.fit_seconds_, "interval": round(time.perf_counter() - t1, 1)}
    best = {k: getattr(m, "best_iteration_", None) for k, m in ens.base_models_.items()}
    cols = predict_columns(X, ens, interval)
    refit = None
    if cfg.refit_full:
        t2 = time.perf_counter()
        interval, refit = refit_on_all_labels(ens, interval, X, y, tr, va, cats, cfg, tuple(names),
                                              columns.get("interval"))
        later = np.isin(split, LATER_SPLITS)
        for k, v in (predict_columns(X[later], ens, interval) if later.any() else {}).items():
            cols[k][later] = v
        timings["refit_full"] = round(time.perf_counter() - t2, 1)
    preds = frame.select("pid", "split", "label").with_columns(**{k: pl.Series(v) for k, v in cols.items()})
    info = {"weights": ens.weights_, "intercept": ens.intercept_, "oof_metrics": ens.oof_metrics_,
            "fit_seconds": round(seconds, 1), "timings": timings,
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_features": len(names),
            "n_features_per_learner": {k: len(v) if v is not None else len(names) for k, v in columns.items()}
            or {k: len(names) for k in cfg.learners},
            "best_iterations": best, "refit_full": refit}
    if interval is not None:
        info["interval"] = {"coverage": interval.coverage, "margin": interval.margin_,
                            "n_calibration": interval.n_calibration_, **interval.raw_coverage_,
                            **{s: interval_coverage(preds.filter(pl.col("split") == s)) for s in ("val", "test")}}
    bundle = StackBundle(ensemble=ens, interval=interval, feature_names=list(names),
                         feature_groups=cfg.all_groups)
    return preds, bundle, info


def predict_columns(X: np.ndarray, ens: StackedEnsemble, interval: ConformalInterval | None) -> dict[str, np.ndarray]:
    """(N, F) -> {"pred", "pred_<learner>"..., and the interval bounds}: each (N,) float64."""
    cols = {"pred": np.asarray(ens.predict(X), np.float64)} | {f"pred_{k}": v for k, v in ens.predict_base(X).items()}
    if interval is not None:
        cols |= {k: np.asarray(v, np.float64) for k, v in zip(INTERVAL_COLUMNS, interval.predict(X))}
    return cols


def refit_on_all_labels(ens: StackedEnsemble, interval: ConformalInterval | None, X: np.ndarray, y: np.ndarray,
                        tr: np.ndarray, va: np.ndarray, cats: tuple[int, ...],
                        cfg: StackConfig, names: tuple[str, ...] = (), columns: tuple[int, ...] | None = None
                        ) -> tuple[ConformalInterval | None, dict]:
    """Refit ``ens``'s base learners (in place) and the quantile models on the train + val rows.

    Iterations: the validation fit's, scaled by the row ratio (tree learners) or kept (``EPOCH_LEARNERS``).
    The interval keeps the margin calibrated on val by the validation-fit quantile models (the
    refits saw val: calibrating them on it would be in-sample). Returns (the refitted interval,
    learner -> {best_iteration, rounds, n_rows}).
    """
    full = tr | va
    ens.refit_full(X[full], y[full], unscaled=EPOCH_LEARNERS & set(ens.base_models_))
    report = dict(ens.refit_full_)
    if interval is None:
        return None, report
    rows = np.flatnonzero(tr)
    n_fitted = len(internal_es_rows(rows, cfg.es_fraction)[0])  # the quantile models' own fitted rows
    sides = (("interval_lo", cfg.quantiles[0], interval.lower), ("interval_hi", cfg.quantiles[1], interval.upper))
    tasks = [("refit_full", _quantile_learner(q, cats, cfg, names, columns), model.best_iteration_, n_fitted, True)
             for _, q, model in sides]
    refits = {}
    for (side, _, model), ((est, rounds), _) in zip(sides, run_fits(tasks, {"X": X[full], "y": y[full]})):
        refits[side] = est  # two tasks of the current executor
        report[side] = {"best_iteration": int(model.best_iteration_), "rounds": rounds, "n_rows": int(full.sum())}
    return replace(interval, lower=refits["interval_lo"], upper=refits["interval_hi"]), report


def _quantile_learner(q: float, cats: tuple[int, ...], cfg: StackConfig, names: tuple[str, ...],
                      columns: tuple[int, ...] | None):
    return partial(create_learner, "lgbm", {**cfg.learner_params.get("lgbm", {}), "quantile": q}, cats, names, columns)


def fit_interval(X: np.ndarray, y: np.ndarray, postdate: np.ndarray, tr: np.ndarray, va: np.ndarray,
                 cats: tuple[int, ...], cfg: StackConfig, names: tuple[str, ...] = (),
                 columns: tuple[int, ...] | None = None) -> ConformalInterval | None:
    """LightGBM quantile models on the train rows (early-stopped on their latest share), calibrated on val.

    They read ``columns`` of X (``train_stack.feature_groups``; all of X when None).
    """
    if not cfg.quantiles:
        return None
    if len(cfg.quantiles) != 2 or not 0 < cfg.quantiles[0] < cfg.quantiles[1] < 1:
        raise ValueError(f"train_stack.quantiles must be two increasing levels in (0, 1); got {cfg.quantiles}")
    if not va.any():
        raise ValueError("train_stack: the prediction interval is calibrated on the val split, which is empty")
    rows = np.flatnonzero(tr)
    rows = rows[np.argsort(postdate[rows], kind="stable")]  # chronological: early stopping on the latest share
    tasks = [("rows", _quantile_learner(q, cats, cfg, names, columns), cfg.es_fraction) for q in cfg.quantiles]
    (lo, _), (hi, _) = run_fits(tasks, {"X": X, "y": y, "rows": rows})  # two tasks of the current executor
    return ConformalInterval(lo, hi, coverage=cfg.quantiles[1] - cfg.quantiles[0]).calibrate(X[va], y[va])


@dataclass
class StackBundle:
    """Everything needed to predict new posts: the fitted stack, the interval, feature order."""

    ensemble: StackedEnsemble
    interval: ConformalInterval | None
    feature_names: list[str]
    feature_groups: tuple[str, ...]

    def predict(self, X: np.ndarray, run: Callable[[dict], dict] | None = None) -> dict[str, np.ndarray]:
        """(N, F) features in ``feature_names`` order -> {"pred", "interval_lo", "interval_hi"}.

        ``run``: how the independent model calls (``parts``) are made, name -> callable in, name ->
        output out (e.g. ``models.part_runner.PartRunner``: over two threads); None: one after another.
        """
        parts = self.parts(X)
        got = {name: call() for name, call in parts.items()} if run is None else run(parts)
        out = {"pred": self.ensemble.combine({n: got[f"base:{n}"] for n in self.ensemble.base_models_})}
        if self.interval is not None:
            out |= dict(zip(INTERVAL_COLUMNS, self.interval.conformalised(got["interval:lower"],
                                                                          got["interval:upper"])))
        return out

    def parts(self, X: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
        """The model calls ``predict(X)`` combines, each independent of the others: ``base:<learner>``
        (``StackedEnsemble.predict_base``'s values) and ``interval:lower`` / ``interval:upper``."""
        out = {f"base:{n}": call for n, call in self.ensemble.base_calls(X).items()}
        if self.interval is not None:
            out |= {"interval:lower": partial(self.interval.lower.predict, X),
                    "interval:upper": partial(self.interval.upper.predict, X)}
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
