"""Drift remedies (models.drift): trend extrapolation, fitting on the train rows only, recency weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.drift import (DetrendedRegressor, RecencyWeightedRegressor, TimeTrend, binned_means, recency_weights,
                          residual_shift, trend_extrapolation, with_drift)
from models.gbdt import LightGBMRegressor

REAL_LABELS = Path(__file__).resolve().parents[2] / "shared" / "smpd" / "real_train_labels_time_ordered.csv"
SLOPE = 0.03  # planted label units per day


def lgbm(**kw) -> LightGBMRegressor:
    return LightGBMRegressor(**{**dict(n_estimators=60, learning_rate=0.2, num_leaves=7, min_data_in_leaf=5,
                                       early_stopping_rounds=10, num_threads=1), **kw})


def _data(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 0: day in [0, 150); y = SLOPE * day + a nonlinear effect of column 1 + noise."""
    rng = np.random.default_rng(seed)
    day = np.sort(rng.uniform(0, 150, n))
    X = np.column_stack([day, rng.normal(size=n), rng.normal(size=n)]).astype(np.float32)
    y = SLOPE * day + np.sin(2 * X[:, 1]) + rng.normal(scale=0.3, size=n)
    return X, y


def _splits(n: int):
    """Chronological train / val / test index ranges: days < 100, 100-115, 115-150."""
    return slice(0, int(n * 100 / 150)), slice(int(n * 100 / 150), int(n * 115 / 150)), slice(int(n * 115 / 150), n)


@parametrize_with_checks([DetrendedRegressor(lgbm(n_estimators=20), time_column=0),
                          DetrendedRegressor(lgbm(n_estimators=20), time_column=0, trend="piecewise", n_knots=2),
                          RecencyWeightedRegressor(lgbm(n_estimators=20), time_column=0, half_life_days=2.0)])
def test_sklearn_conformance(estimator, check):
    check(estimator)


def test_detrended_extrapolates_planted_trend_where_plain_gbdt_stays_flat():
    X, y = _data()
    tr, va, te = _splits(len(y))
    plain = lgbm().fit(X[tr], y[tr], X[va], y[va])
    det = DetrendedRegressor(lgbm(), time_column=0).fit(X[tr], y[tr], X[va], y[va])
    assert det.trend_.slope() == pytest.approx(SLOPE, rel=0.1)
    late = X[te]
    err_plain = (plain.predict(late) - y[te]).mean()
    err_det = (det.predict(late) - y[te]).mean()
    assert err_plain < -0.5  # flat beyond day 100: about -SLOPE * 25 below the truth on average
    assert abs(err_det) < 0.15
    # a plain GBDT is constant in time beyond the training dates; the detrended one keeps rising
    probe = np.repeat(late[:1], 3, axis=0)
    probe[:, 0] = [110.0, 130.0, 150.0]
    assert np.ptp(plain.predict(probe)) == 0.0
    np.testing.assert_allclose(np.diff(det.predict(probe)), SLOPE * 20, rtol=0.1)


def test_extrapolation_horizon_then_flat():
    t = np.arange(100.0)
    flat = TimeTrend(extrapolate_days=0).fit(t, 2.0 * t + 1.0)
    np.testing.assert_allclose(flat.predict([99.0, 150.0, -10.0]), [199.0, 199.0, 1.0])
    assert flat.predict([np.nan])[0] == pytest.approx(flat.level_)
    capped = TimeTrend(extrapolate_days=20).fit(t, 2.0 * t + 1.0)
    np.testing.assert_allclose(capped.predict([110.0, 119.0, 150.0, -50.0]), [221.0, 239.0, 239.0, -39.0])
    with pytest.raises(ValueError, match="extrapolate_days"):
        TimeTrend(extrapolate_days=-1).fit(t, t)


def test_piecewise_trend_follows_a_kink_and_continues_its_last_segment():
    t = np.linspace(0, 100, 401)
    y = np.where(t < 50, 10 - 0.1 * t, 5.0)  # falls, then flat: a straight line would keep falling
    pw = TimeTrend(kind="piecewise", n_knots=3).fit(t, y)
    line = TimeTrend(kind="linear").fit(t, y)
    assert abs(pw.predict([150.0])[0] - 5.0) < 0.5
    assert line.predict([150.0])[0] < 3.0
    assert abs(pw.slope()) < 0.01


def test_trend_fitted_on_fit_rows_only():
    X, y = _data()
    tr, va, te = _splits(len(y))
    a = DetrendedRegressor(lgbm(), time_column=0).fit(X[tr], y[tr], X[va], y[va])
    b = DetrendedRegressor(lgbm(), time_column=0).fit(X[tr], y[tr], X[va], y[va] + 100.0 * X[va, 0])
    np.testing.assert_array_equal(a.trend_.coef_, b.trend_.coef_)  # val labels only early-stop the learner
    # with the tree count fixed, val labels change nothing at all; test labels are never seen
    c = DetrendedRegressor(lgbm(), time_column=0).fit(X[tr], y[tr], num_boost_round=30)
    d = DetrendedRegressor(lgbm(), time_column=0).fit(X[tr], y[tr], X[va], -y[va], num_boost_round=30)
    np.testing.assert_array_equal(c.predict(X[te]), d.predict(X[te]))


def test_recency_weights_monotone_and_normalised():
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 300, 500)
    w = recency_weights(t, half_life_days=60.0)
    assert w.mean() == pytest.approx(1.0)
    order = np.argsort(t)
    assert np.all(np.diff(w[order]) >= 0)
    newest, older = np.argmax(t), np.argmin(np.abs(t - (t.max() - 60.0)))
    assert w[older] / w[newest] == pytest.approx(2 ** (-(t.max() - t[older]) / 60.0))
    t[:3] = np.nan  # no time: the mean weight of the dated rows
    w = recency_weights(t, 60.0)
    assert w.mean() == pytest.approx(1.0) and np.allclose(w[:3], w[0]) and np.all(np.diff(w[3:][np.argsort(t[3:])]) >= 0)
    with pytest.raises(ValueError):
        recency_weights(t, 0.0)


def test_recency_weighted_fit_passes_the_weights():
    X, y = _data()
    tr, va, _ = _splits(len(y))
    y2 = y.copy()
    y2[: len(y) // 3] += 50.0  # corrupt the oldest third: a short half-life all but ignores it
    short = RecencyWeightedRegressor(lgbm(bagging_fraction=1.0), time_column=0, half_life_days=5.0)
    short.fit(X[tr], y2[tr], X[va], y2[va])
    plain = lgbm(bagging_fraction=1.0).fit(X[tr], y2[tr], X[va], y2[va])
    assert short.t_ref_ == pytest.approx(float(X[tr, 0].max()))
    assert np.abs(short.predict(X[va]) - y[va]).mean() <= np.abs(plain.predict(X[va]) - y[va]).mean()
    weights = recency_weights(X[tr, 0], 5.0)
    manual = lgbm(bagging_fraction=1.0).fit(X[tr], y2[tr], X[va], y2[va], sample_weight=weights)
    np.testing.assert_array_equal(short.predict(X[va]), manual.predict(X[va]))


def test_recency_weighted_refuses_a_learner_without_sample_weight():
    from models.gbdt import XGBoostRegressor
    X, y = _data(200)
    if "sample_weight" in XGBoostRegressor.fit.__code__.co_varnames:
        pytest.skip("XGBoostRegressor takes sample_weight")
    with pytest.raises(TypeError, match="sample_weight"):
        RecencyWeightedRegressor(XGBoostRegressor(n_estimators=5), time_column=0).fit(X, y)


def test_clone_and_params_roundtrip():
    det = DetrendedRegressor(lgbm(), time_column=2, trend="huber", extrapolate_days=0.0)
    params = det.get_params()
    assert params["time_column"] == 2 and params["trend"] == "huber" and params["estimator__num_leaves"] == 7
    c = clone(det).set_params(estimator__num_leaves=15, n_knots=5)
    assert c.estimator.num_leaves == 15 and c.n_knots == 5 and det.estimator.num_leaves == 7
    nested = DetrendedRegressor(RecencyWeightedRegressor(lgbm(), time_column=0, half_life_days=30.0), time_column=0)
    X, y = _data(400)
    nested.fit(X[:300], y[:300], X[300:], y[300:])
    assert nested.best_iteration_ >= 1 and nested.predict(X[:4]).shape == (4,)
    with pytest.raises(ValueError, match="time_column"):
        DetrendedRegressor(lgbm(), time_column=9).fit(X, y)


def test_with_drift_composes_the_wrappers():
    base = lgbm()
    assert with_drift(base, time_column=0) is base
    both = with_drift(base, time_column=4, detrend="piecewise", extrapolate_days=60.0, half_life_days=30.0)
    assert isinstance(both, DetrendedRegressor) and both.time_column == 4 and both.extrapolate_days == 60.0
    assert isinstance(both.estimator, RecencyWeightedRegressor) and both.estimator.half_life_days == 30.0
    assert both.estimator.estimator is base


def test_measures_on_a_planted_drift():
    t = np.arange(1000.0)
    y = np.where(t < 400, 8 - 0.005 * t, 6.0)  # declines, then flat
    bins = binned_means(t, y, 10)
    assert len(bins) == 10 and bins[0]["mean"] > bins[-1]["mean"] and bins[0]["n"] == 100
    ex = trend_extrapolation(t, y, fit_fraction=0.8)
    assert ex["actual_rest"] == pytest.approx(6.0)
    assert ex["error_trend"] < ex["error_last_level"] == pytest.approx(0.0)  # the line overshoots the decline
    sh = residual_shift(y, y + 0.5, t, bin_width=100.0)
    assert sh["mean_residual"] == pytest.approx(-0.5) and sh["mean_removed"]["mae"] == pytest.approx(0.0)
    assert len(sh["bins"]) == 10


@pytest.fixture
def real_labels():
    if not REAL_LABELS.is_file():
        pytest.skip("../shared/smpd/real_train_labels_time_ordered.csv not present")
    return pl.read_csv(REAL_LABELS).sort("postdate_rank")


def test_real_smpd_drift_a_line_overshoots(real_labels):
    """Real SMPD: labels fall over the first ~40% of the posting order, then level off, so a line
    fitted on the first 80% forecasts the last 20% too low, by more than the flat mean does."""
    y = real_labels["label"].to_numpy()
    t = real_labels["postdate_rank"].to_numpy().astype(np.float64)
    bins = binned_means(t, y, 10)
    assert bins[0]["mean"] - min(b["mean"] for b in bins) > 0.5
    ex = trend_extrapolation(t, y, 0.8)
    assert ex["error_trend"] < -0.3 and abs(ex["error_flat"]) < 0.1
