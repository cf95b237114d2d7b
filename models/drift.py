"""Time drift: trends fitted on train labels, and wrappers that let any base learner follow them.

A GBDT predicts a flat continuation beyond the last training date: a post later than every
training row lands in the leaves of the latest training period. Three remedies, each fitted
on the rows passed to ``fit`` only (the train split; val rows only early-stop):

* ``DetrendedRegressor``: fit a ``TimeTrend`` of y on the post time, fit the learner on
  y - trend, predict learner + trend (the trend keeps its end slope, for at most
  ``extrapolate_days`` beyond the training dates);
* ``RecencyWeightedRegressor``: training rows weighted by ``2 ** (-age / half_life)``, age
  counted back from the latest training row (``recency_weights``);
* LightGBM's ``linear_tree`` (linear models in the leaves), a learner parameter.

The wrappers read the post time from a column of X (``time_column``, in days, e.g.
``time_days_since_epoch`` of features_temporal), so they keep the base learners' interface
``fit(X, y, X_val=None, y_val=None, num_boost_round=None)`` / ``predict(X)`` and a stack
bundle predicts new posts from X alone. ``binned_means``, ``trend_extrapolation`` and
``residual_shift`` measure drift (benchmarks/bench_drift.py).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import HuberRegressor
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input
from models.metrics import regression_metrics

TREND_KINDS = ("linear", "huber", "piecewise")


class TimeTrend(BaseEstimator):
    """A 1-D trend y ~ f(t): ``linear`` (least squares), ``huber`` (robust line) or ``piecewise``
    (continuous piecewise-linear, ``n_knots`` interior knots at quantiles of t).

    ``extrapolate_days``: how far beyond the fitted range of t the trend keeps its end slope
    (``piecewise``: its last segment's), in units of t; further out it stays flat. None: without
    limit; 0: flat beyond the range. Non-finite t predicts ``level_``, the mean over the fitted rows.
    """

    def __init__(self, *, kind: str = "linear", n_knots: int = 3, extrapolate_days: float | None = None):
        self.kind = kind
        self.n_knots = n_knots
        self.extrapolate_days = extrapolate_days

    def _basis(self, t: np.ndarray) -> np.ndarray:
        """(n,) t -> (n, 2 + n_knots) design: 1, scaled t, hinges (t - knot)+ (scaled)."""
        z = (t - self.center_) / self.scale_
        cols = [np.ones_like(z), z] + [np.maximum(z - k, 0.0) for k in self.knots_]
        return np.column_stack(cols)

    def fit(self, t, y) -> "TimeTrend":
        """t: (n,) times (NaN rows are ignored); y: (n,) labels."""
        if self.kind not in TREND_KINDS:
            raise ValueError(f"TimeTrend: kind must be one of {TREND_KINDS}, got {self.kind!r}")
        if self.extrapolate_days is not None and not self.extrapolate_days >= 0:
            raise ValueError(f"TimeTrend: extrapolate_days must be None or >= 0, got {self.extrapolate_days}")
        t, y = np.asarray(t, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
        ok = np.isfinite(t)
        t, y = t[ok], y[ok]
        if len(t) == 0:
            raise ValueError("TimeTrend: no row with a finite time to fit the trend on")
        self.t_min_, self.t_max_ = float(t.min()), float(t.max())
        self.center_, self.scale_ = float(t.mean()), float(t.std()) or 1.0
        z = (t - self.center_) / self.scale_
        n_knots = self.n_knots if self.kind == "piecewise" else 0
        self.knots_ = np.unique(np.quantile(z, np.linspace(0, 1, n_knots + 2)[1:-1])) if n_knots else np.empty(0)
        A = self._basis(t)
        if np.unique(t).size < 2:  # no slope to learn: the mean
            self.coef_ = np.r_[y.mean(), np.zeros(A.shape[1] - 1)]
        elif self.kind == "huber":
            h = HuberRegressor(alpha=0.0).fit(A[:, 1:], y)
            self.coef_ = np.r_[h.intercept_, h.coef_]
        else:
            self.coef_ = np.linalg.lstsq(A, y, rcond=None)[0]
        self.level_ = float((A @ self.coef_).mean())
        return self

    def predict(self, t) -> np.ndarray:
        """(n,) times -> (n,) float64 trend values."""
        check_is_fitted(self, "coef_")
        t = np.asarray(t, dtype=np.float64).ravel()
        ok = np.isfinite(t)
        tt = np.where(ok, t, self.center_)
        if self.extrapolate_days is not None:
            tt = np.clip(tt, self.t_min_ - self.extrapolate_days, self.t_max_ + self.extrapolate_days)
        return np.where(ok, self._basis(tt) @ self.coef_, self.level_)

    def slope(self, t: float | None = None) -> float:
        """dy/dt (per unit of t) at t (default: the end of the fitted range, where extrapolation starts)."""
        t = self.t_max_ if t is None else t
        z = (t - self.center_) / self.scale_
        return float((self.coef_[1] + self.coef_[2:][z >= self.knots_].sum()) / self.scale_)


def recency_weights(t, half_life_days: float, t_ref: float | None = None) -> np.ndarray:
    """(n,) times in days -> (n,) weights ``2 ** (-(t_ref - t) / half_life_days)``, scaled to mean 1.

    ``t_ref`` defaults to the latest finite t (the newest row weighs the most); rows with a
    non-finite time get the mean weight of the others before the scaling. Non-decreasing in t.
    """
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    t = np.asarray(t, dtype=np.float64).ravel()
    ok = np.isfinite(t)
    if not ok.any():
        return np.ones(len(t))
    ref = float(t[ok].max()) if t_ref is None else float(t_ref)
    w = np.exp2(-(ref - np.where(ok, t, ref)) / half_life_days)
    w[~ok] = w[ok].mean()
    return w / w.mean()


def _time(X: np.ndarray, column: int) -> np.ndarray:
    if not 0 <= column < X.shape[1]:
        raise ValueError(f"time_column {column} is not a column of X ({X.shape[1]} columns)")
    return X[:, column].astype(np.float64)


class _TimeWrapper(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """Shared plumbing: input checks, the inner learner's fit keywords and ``best_iteration_``."""

    def _fit_inner(self, X, y, X_val, y_val, num_boost_round, **kw):
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__}: estimator is required")
        if num_boost_round is not None:
            kw["num_boost_round"] = num_boost_round
        self.estimator_ = clone(self.estimator).fit(X, y, X_val, y_val, **kw)
        return self

    def _check(self, X, y, X_val, y_val):
        return check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False)

    @property
    def best_iteration_(self):
        return getattr(self.estimator_, "best_iteration_", None)


class DetrendedRegressor(_TimeWrapper):
    """``estimator`` fitted on y - trend(t), plus the trend: a learner that extrapolates a time trend.

    ``time_column``: index of the post-time column of X, in days. The ``TimeTrend``
    (``trend``, ``n_knots``, ``extrapolate_days``) is fitted on the rows passed to ``fit`` only;
    (X_val, y_val) reach the learner as (X_val, y_val - trend(t_val)) for early stopping.
    Fitted: ``trend_`` (TimeTrend), ``estimator_``.
    """

    def __init__(self, estimator=None, *, time_column: int = 0, trend: str = "linear", n_knots: int = 3,
                 extrapolate_days: float | None = None):
        self.estimator = estimator
        self.time_column = time_column
        self.trend = trend
        self.n_knots = n_knots
        self.extrapolate_days = extrapolate_days

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round: int | None = None) -> "DetrendedRegressor":
        X, y, X_val, y_val = self._check(X, y, X_val, y_val)
        self.trend_ = TimeTrend(kind=self.trend, n_knots=self.n_knots, extrapolate_days=self.extrapolate_days)
        self.trend_.fit(_time(X, self.time_column), y)
        r_val = None if X_val is None else y_val - self.trend_.predict(_time(X_val, self.time_column))
        return self._fit_inner(X, y - self.trend_.predict(_time(X, self.time_column)), X_val, r_val, num_boost_round)

    def predict(self, X) -> np.ndarray:
        X = check_predict_input(self, X, ensure_all_finite=False)
        base = np.asarray(self.estimator_.predict(X), dtype=np.float64)
        return base + self.trend_.predict(_time(X, self.time_column))


class RecencyWeightedRegressor(_TimeWrapper):
    """``estimator`` fitted with ``recency_weights(t, half_life_days)`` on its training rows.

    ``time_column``: index of the post-time column of X, in days. The weights are relative to
    the latest row passed to ``fit`` (mean 1 over those rows); validation rows are unweighted.
    The estimator's ``fit`` must take ``sample_weight``. Fitted: ``estimator_``, ``t_ref_``.
    """

    def __init__(self, estimator=None, *, time_column: int = 0, half_life_days: float = 90.0):
        self.estimator = estimator
        self.time_column = time_column
        self.half_life_days = half_life_days

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round: int | None = None) -> "RecencyWeightedRegressor":
        X, y, X_val, y_val = self._check(X, y, X_val, y_val)
        if self.estimator is not None and not has_fit_parameter(self.estimator, "sample_weight"):
            raise TypeError(f"RecencyWeightedRegressor: {type(self.estimator).__name__}.fit takes no sample_weight")
        t = _time(X, self.time_column)
        self.t_ref_ = float(np.nanmax(t)) if np.isfinite(t).any() else float("nan")
        w = recency_weights(t, self.half_life_days)
        return self._fit_inner(X, y, X_val, y_val, num_boost_round, sample_weight=w)

    def predict(self, X) -> np.ndarray:
        X = check_predict_input(self, X, ensure_all_finite=False)
        return np.asarray(self.estimator_.predict(X), dtype=np.float64)


def with_drift(estimator, *, time_column: int, detrend: str | None = None, n_knots: int = 3,
               extrapolate_days: float | None = None, half_life_days: float | None = None):
    """``estimator`` wrapped for drift: recency weights (when ``half_life_days``) inside a
    detrended target (when ``detrend`` is a ``TimeTrend`` kind); unchanged when both are None."""
    if half_life_days is not None:
        estimator = RecencyWeightedRegressor(estimator, time_column=time_column, half_life_days=half_life_days)
    if detrend is not None:
        estimator = DetrendedRegressor(estimator, time_column=time_column, trend=detrend, n_knots=n_knots,
                                       extrapolate_days=extrapolate_days)
    return estimator


# --- measuring drift -------------------------------------------------------------------------

def binned_means(t, y, n_bins: int = 10) -> list[dict]:
    """Mean of y in ``n_bins`` equal-count bins of t (time order): [{bin, t_lo, t_hi, n, mean}]."""
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    return [{"bin": i, "t_lo": float(t[b[0]]), "t_hi": float(t[b[-1]]), "n": len(b), "mean": float(y[b].mean())}
            for i, b in enumerate(np.array_split(order, n_bins)) if len(b)]


def trend_extrapolation(t, y, fit_fraction: float = 0.8, kind: str = "linear", window: float = 0.125) -> dict:
    """Fit a trend on the earliest ``fit_fraction`` of rows (by t), predict the mean of the rest.

    Returns the trend's end slope (per unit t), its change over the fitted part, the rest's
    actual mean and three forecasts of it with their errors (forecast - actual): the trend,
    the fitted part's mean (flat) and the mean of its latest ``window`` share (last level).
    """
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    cut = round(fit_fraction * len(t))
    a, b = order[:cut], order[cut:]
    trend = TimeTrend(kind=kind).fit(t[a], y[a])
    last = a[-max(1, round(window * len(a))):]
    actual = float(y[b].mean())
    forecasts = {"trend": float(trend.predict(t[b]).mean()), "flat": float(y[a].mean()), "last_level": float(y[last].mean())}
    ends = trend.predict([t[a].min(), t[a].max()])
    return {"n_fit": len(a), "n_rest": len(b), "slope": trend.slope(),
            "change_over_fit": float(ends[1] - ends[0]), "actual_rest": actual,
            **{f"forecast_{k}": v for k, v in forecasts.items()},
            **{f"error_{k}": v - actual for k, v in forecasts.items()}}


def residual_shift(y, pred, t=None, bin_width: float | None = None) -> dict:
    """How much a level shift explains of a split's error (a diagnostic: it uses the split's labels).

    Returns the mean residual (y - pred), metrics as predicted, after removing the split's mean
    residual, and (with t and ``bin_width``) after removing each time bin's mean residual, and
    the bins' mean residuals [{t_lo, n, mean_residual}].
    """
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    r = y - pred
    out = {"mean_residual": float(r.mean()), "as_predicted": regression_metrics(y, pred),
           "mean_removed": regression_metrics(y, pred + r.mean())}
    if t is not None and bin_width:
        t = np.asarray(t, dtype=np.float64)
        b = np.floor((t - t.min()) / bin_width).astype(np.int64)
        means = np.bincount(b, weights=r) / np.maximum(np.bincount(b), 1)
        out["bin_means_removed"] = regression_metrics(y, pred + means[b])
        out["bins"] = [{"t_lo": float(t.min() + k * bin_width), "n": int((b == k).sum()), "mean_residual": float(means[k])}
                       for k in np.unique(b)]
    return out
