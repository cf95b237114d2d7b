import numpy as np
import pytest
from scipy.stats import spearmanr

from models.metrics import metrics_by_bin, regression_metrics, spearman


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = np.round(rng.normal(6.4, 2.5, 500), 1)  # rounding creates ties
    p = y + rng.normal(0, 2, 500)
    p[:50] = 5.0
    assert spearman(y, p) == pytest.approx(spearmanr(y, p).statistic, abs=1e-12)


def test_regression_metrics_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 5.0])
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert m["mse"] == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert m["src"] == pytest.approx(spearmanr(y, p).statistic)
    assert m["n"] == 4


def test_constant_prediction_and_empty():
    assert np.isnan(regression_metrics(np.arange(5.0), np.ones(5))["src"])
    assert regression_metrics(np.array([]), np.array([]))["n"] == 0


def test_metrics_by_bin():
    y = np.array([1.0, 2.0, 5.5, 6.0, 16.0])
    p = np.array([2.0, 2.0, 5.0, 7.0, 10.0])
    rows = metrics_by_bin(y, p, [1, 3, 7, 17])
    assert [r["n"] for r in rows] == [2, 2, 1]
    assert rows[0]["mae"] == pytest.approx(0.5) and rows[0]["bias"] == pytest.approx(0.5)
    assert rows[1]["bias"] == pytest.approx((-0.5 + 1.0) / 2)
    assert rows[2]["bias"] == pytest.approx(-6.0)
