"""Conformalised quantile intervals: the margin formula, coverage on exchangeable data, val-only calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.intervals import ConformalInterval, conformal_margin


class Shifted:
    """A fake quantile model: the first feature plus a constant."""

    def __init__(self, shift: float):
        self.shift = shift

    def predict(self, X):
        return X[:, 0] + self.shift


def test_margin_is_the_finite_sample_quantile_of_the_scores():
    lo, hi = np.zeros(9), np.ones(9)
    y = np.array([0.5, 1.5, 2.0, -1.0, 0.2, 3.0, 0.9, -0.25, 1.1])  # scores: max(lo - y, y - hi)
    scores = np.sort(np.maximum(lo - y, y - hi))
    for coverage in (0.5, 0.8, 0.9):
        rank = math.ceil(10 * coverage)
        assert conformal_margin(lo, hi, y, coverage) == scores[rank - 1]
    assert conformal_margin(lo, hi, y, 0.95) == math.inf  # ceil(10 * 0.95) = 10 > 9 points
    with pytest.raises(ValueError, match="coverage"):
        conformal_margin(lo, hi, y, 1.0)


@pytest.mark.parametrize("shift", [0.2, 3.0])  # intervals far too narrow, then far too wide
def test_conformal_interval_reaches_nominal_coverage(shift):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 1))
    y = X[:, 0] + rng.normal(size=6000)
    ci = ConformalInterval(Shifted(-shift), Shifted(shift), coverage=0.8).calibrate(X[:2000], y[:2000])
    lo, hi = ci.predict(X[2000:])
    inside = ((y[2000:] >= lo) & (y[2000:] <= hi)).mean()
    raw_lo, raw_hi = ci.raw(X[2000:])
    raw = ((y[2000:] >= raw_lo) & (y[2000:] <= raw_hi)).mean()
    assert abs(raw - 0.8) > 0.15               # the raw interval is badly calibrated ...
    assert abs(inside - 0.8) < 0.025           # ... the conformal one is not
    assert (ci.margin_ > 0) == (shift < 1.2816)  # widened when too narrow, narrowed when too wide


def test_calibration_reads_only_the_calibration_rows():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(500, 1)), rng.normal(size=500)
    a = ConformalInterval(Shifted(-1), Shifted(1), 0.8).calibrate(X[:200], y[:200])
    y2 = y.copy()
    y2[200:] += 100.0                           # "test" labels change: the margin must not
    b = ConformalInterval(Shifted(-1), Shifted(1), 0.8).calibrate(X[:200], y2[:200])
    assert a.margin_ == b.margin_
    c = ConformalInterval(Shifted(-1), Shifted(1), 0.8).calibrate(X[:200], y[:200] * 3)
    assert c.margin_ != a.margin_
