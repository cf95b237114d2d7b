"""Gradient-boosting base learners as scikit-learn-style estimators.

``LightGBMRegressor`` stores only its keyword arguments in ``__init__``; ``fit`` learns
``booster_`` and ``best_iteration_`` (early-stopped on the validation set when one is given).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class LightGBMRegressor(RegressorMixin, BaseEstimator):
    """LightGBM (L2 objective) with early stopping on an explicit validation set.

    ``categorical_features``: indices of integer-coded categorical columns (NaN = missing).
    """

    def __init__(self, *, learning_rate: float = 0.05, num_leaves: int = 63, min_data_in_leaf: int = 40,
                 feature_fraction: float = 0.8, bagging_fraction: float = 0.8, bagging_freq: int = 1,
                 lambda_l2: float = 1.0, n_estimators: int = 3000, early_stopping_rounds: int = 100,
                 num_threads: int = 2, seed: int = 42, categorical_features: tuple[int, ...] = ()):
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.bagging_freq = bagging_freq
        self.lambda_l2 = lambda_l2
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.num_threads = num_threads
        self.seed = seed
        self.categorical_features = categorical_features

    def _lgb_params(self) -> dict:
        return {"objective": "regression", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
                "bagging_fraction": self.bagging_fraction, "bagging_freq": self.bagging_freq,
                "lambda_l2": self.lambda_l2, "num_threads": self.num_threads, "seed": self.seed,
                "deterministic": True, "force_row_wise": True, "verbosity": -1}

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            num_boost_round: int | None = None) -> "LightGBMRegressor":
        """Fit on (X, y); with (X_val, y_val), stop when val L2 has not improved for early_stopping_rounds.

        ``num_boost_round`` fixes the number of trees (used to refit with a chosen iteration count).
        """
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        cats = list(self.categorical_features)
        train = lgb.Dataset(X, y, categorical_feature=cats, free_raw_data=True)
        callbacks, valid = [], []
        if X_val is not None and num_boost_round is None:
            valid = [lgb.Dataset(np.asarray(X_val, np.float32), np.asarray(y_val, np.float64), reference=train,
                                 categorical_feature=cats)]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(self._lgb_params(), train, num_boost_round=num_boost_round or self.n_estimators,
                                  valid_sets=valid, callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.booster_.predict(np.asarray(X, dtype=np.float32), num_iteration=self.best_iteration_)
