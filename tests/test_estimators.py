"""Base learners and meta-learners: scikit-learn conformance, early stopping, determinism."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.gbdt import CatBoostRegressor, LightGBMRegressor, XGBoostRegressor
from models.mlp_head import MLPRegressorHead
from models.meta_learners import LGBMStack, NonNegativeLinearStack

SMALL_PARAMS = {
    "lgbm": (LightGBMRegressor, dict(n_estimators=30, learning_rate=0.3, num_leaves=7, min_data_in_leaf=5,
                                     early_stopping_rounds=5)),
    "catboost": (CatBoostRegressor, dict(n_estimators=30, learning_rate=0.3, depth=3, early_stopping_rounds=5)),
    "xgboost": (XGBoostRegressor, dict(n_estimators=30, learning_rate=0.3, max_depth=3, early_stopping_rounds=5)),
    "mlp": (MLPRegressorHead, dict(hidden_layer_sizes=(16,), max_epochs=30, patience=5, batch_size=32,
                                   learning_rate_init=0.01)),
}
LONG = {"lgbm": {"n_estimators": 200}, "catboost": {"n_estimators": 200}, "xgboost": {"n_estimators": 200},
        "mlp": {"max_epochs": 200}}


def small(name: str, **overrides):
    """A fresh small base learner; ``overrides`` replace its default test parameters."""
    cls, params = SMALL_PARAMS[name]
    return cls(**{**params, **overrides})


META = [NonNegativeLinearStack(), LGBMStack(n_estimators=30, learning_rate=0.3, min_data_in_leaf=2)]

# Checks that cannot apply, by estimator class name -> {check name: reason}. Every check of
# scikit-learn's suite passes for these estimators (the explicit-validation-set signature
# fit(X, y, X_val=None, y_val=None, num_boost_round=None) keeps fit(X, y) valid, and a fixed
# thread count does not break determinism), except the weight-equals-repetition check that
# LightGBM's sample_weight (used by models.drift's recency weights) cannot meet; any other
# check that starts failing fails the suite instead of being skipped. Not run at all: StackedEnsemble, whose fit needs
# the post dates (fit(X, y) without them would have to guess the time order).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "LightGBMRegressor": {"check_sample_weight_equivalence_on_dense_data":
                          "row bagging and the row-count min_data_in_leaf make weight 2 differ from a repeated row"},
}


def _expected_failed(estimator) -> dict[str, str]:
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks([small(name) for name in SMALL_PARAMS] + META, expected_failed_checks=_expected_failed)
def test_sklearn_conformance(estimator, check):
    check(estimator)


def _data(n: int = 600, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[rng.random(n) < 0.1, 2] = np.nan
    y = X[:, 0] + np.sin(2 * X[:, 1]) + rng.normal(scale=0.5, size=n)
    return X, y


@pytest.mark.parametrize("name", SMALL_PARAMS)
def test_early_stopping_on_explicit_val_and_fixed_rounds(name):
    X, y = _data()
    noise = np.random.default_rng(1).normal(size=200)  # val labels unrelated to X: stop early
    model = small(name, **LONG[name]).fit(X[:400], y[:400], X[400:], noise)
    assert 1 <= model.best_iteration_ < 200
    assert model.n_features_in_ == X.shape[1]
    fixed = small(name).fit(X[:400], y[:400], X[400:], y[400:], num_boost_round=7)
    assert fixed.best_iteration_ == 7
    assert fixed.predict(X[:5]).shape == (5,)


@pytest.mark.parametrize("name", SMALL_PARAMS)
def test_same_seed_same_predictions(name):
    X, y = _data()
    a = small(name).fit(X[:400], y[:400], X[400:500], y[400:500]).predict(X[500:])
    b = small(name).fit(X[:400], y[:400], X[400:500], y[400:500]).predict(X[500:])
    np.testing.assert_array_equal(a, b)


def test_lightgbm_wrapper_matches_raw_booster():
    """Input validation added to the wrapper leaves its fitted model unchanged."""
    X, y = _data()
    est = small("lgbm", categorical_features=(7,))
    X[:, 7] = np.where(np.isnan(X[:, 2]), np.nan, np.arange(len(X)) % 4)
    est.fit(X[:400], y[:400], X[400:500], y[400:500])
    train = lgb.Dataset(X[:400], y[:400], categorical_feature=[7])
    val = lgb.Dataset(X[400:500], y[400:500], reference=train, categorical_feature=[7])
    raw = lgb.train(est._lgb_params(), train, num_boost_round=30, valid_sets=[val],
                    callbacks=[lgb.early_stopping(5, verbose=False)])
    assert est.best_iteration_ == raw.best_iteration
    np.testing.assert_array_equal(est.predict(X[500:]), raw.predict(X[500:], num_iteration=raw.best_iteration))


def _categorical_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 1 is a category code (NaN = missing) whose effect is not monotone in the code."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 6, n).astype(float)])
    X[rng.random(n) < 0.1, 1] = np.nan
    effect = np.array([3.0, -2.0, 2.5, -3.0, 0.0, 1.0])
    y = 0.2 * X[:, 0] + np.where(np.isnan(X[:, 1]), -1.0, effect[np.nan_to_num(X[:, 1]).astype(int)])
    return X, y + rng.normal(scale=0.1, size=n)


def test_catboost_native_categoricals_nan_is_sentinel():
    X, y = _categorical_data()
    model = CatBoostRegressor(n_estimators=100, learning_rate=0.3, depth=3, categorical_features=(1,))
    model.fit(X[:400], y[:400], X[400:500], y[400:500])
    assert np.mean((model.predict(X[500:]) - y[500:]) ** 2) < 0.1 * np.var(y[500:])
    missing, sentinel = X[:5].copy(), X[:5].copy()
    missing[:, 1], sentinel[:, 1] = np.nan, -1.0  # NaN and code -1 are the same category "-1"
    np.testing.assert_array_equal(model.predict(missing), model.predict(sentinel))


def test_xgboost_native_categoricals():
    X, y = _categorical_data()
    model = XGBoostRegressor(n_estimators=100, learning_rate=0.3, max_depth=3, categorical_features=(1,),
                             enable_categorical=True).fit(X[:400], y[:400], X[400:500], y[400:500])
    assert np.mean((model.predict(X[500:]) - y[500:]) ** 2) < 0.1 * np.var(y[500:])


def test_mlp_preprocessing_learned_from_train_x_only():
    X, y = _data()
    X[3, 4] = np.inf  # non-finite counts as missing
    a = small("mlp").fit(X[:400], y[:400], X[400:500], y[400:500])
    X_val = X[400:500] * 100.0
    b = small("mlp").fit(X[:400], y[:400], X_val, y[400:500])
    for key in ("fill", "missing_cols", "mean", "std"):
        np.testing.assert_array_equal(a.stats_[key], b.stats_[key])
    np.testing.assert_array_equal(a.stats_["missing_cols"], [2, 4])  # one indicator per column with a gap
    assert a.stats_["mean"].shape == (X.shape[1] + 2,)
    assert np.isfinite(a.predict(X)).all()


def test_mlp_keeps_best_val_epoch():
    X, y = _data()
    model = small("mlp", max_epochs=60).fit(X[:400], y[:400], X[400:500], y[400:500])
    best = int(np.argmin(model.val_mse_))
    assert model.best_iteration_ == best + 1
    val_mse = np.mean((model.predict(X[400:500]) - y[400:500]) ** 2)
    assert val_mse == pytest.approx(model.val_mse_[best], rel=1e-9)
    assert len(model.val_mse_) <= best + 1 + model.patience
