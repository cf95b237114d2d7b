"""Meta-learners of the stack: what combines the base learners' out-of-fold predictions.

``NonNegativeLinearStack`` (the default, ``meta: nnls``) and ``LGBMStack`` (``meta: lgbm``) take
``P`` (n, m), one column per base learner, and the label; ``weights_`` says how much each column
counts. ``models.stacking.StackedEnsemble`` fits one on the train rows' OOF predictions only.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin

from models.estimator_checks import check_fit_inputs, check_predict_input


class NonNegativeLinearStack(RegressorMixin, BaseEstimator):
    """y ~ intercept_ + P @ weights_ with weights_ >= 0, by least squares (``scipy.optimize.nnls``).

    ``P``: (n, m) base-learner predictions. The columns and y are centred first, so the
    intercept (the mean residual) and the non-negative weights are jointly least squares.
    """

    def __init__(self, *, fit_intercept: bool = True):
        self.fit_intercept = fit_intercept

    def fit(self, P: np.ndarray, y: np.ndarray) -> "NonNegativeLinearStack":
        P, y, _, _ = check_fit_inputs(self, P, y, dtype=np.float64, ensure_all_finite=True)
        p_mean = P.mean(axis=0) if self.fit_intercept else np.zeros(P.shape[1])
        y_mean = y.mean() if self.fit_intercept else 0.0
        self.weights_, _ = nnls(P - p_mean, y - y_mean)
        self.intercept_ = float(y_mean - p_mean @ self.weights_)
        return self

    def predict(self, P: np.ndarray) -> np.ndarray:
        """(n, m) -> (n,)."""
        return check_predict_input(self, P, dtype=np.float64, ensure_all_finite=True) @ self.weights_ + self.intercept_


class LGBMStack(RegressorMixin, BaseEstimator):
    """Small LightGBM on base-learner predictions, monotone non-decreasing in every column.

    Fitted with a fixed number of trees (no early stopping: the meta-learner never sees val).
    ``weights_`` is each column's share of the total split gain (for reporting only).
    """

    def __init__(self, *, n_estimators: int = 200, learning_rate: float = 0.05, num_leaves: int = 7,
                 min_data_in_leaf: int = 50, monotone: bool = True, num_threads: int = 2, seed: int = 42):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.monotone = monotone
        self.num_threads = num_threads
        self.seed = seed

    def fit(self, P: np.ndarray, y: np.ndarray) -> "LGBMStack":
        P, y, _, _ = check_fit_inputs(self, P, y, dtype=np.float64, ensure_all_finite=True)
        params = {"objective": "regression", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                  "min_data_in_leaf": self.min_data_in_leaf, "num_threads": self.num_threads, "seed": self.seed,
                  "deterministic": True, "force_row_wise": True, "verbosity": -1,
                  "monotone_constraints": [1 if self.monotone else 0] * P.shape[1]}
        self.booster_ = lgb.train(params, lgb.Dataset(P, y), num_boost_round=self.n_estimators)
        gain = self.booster_.feature_importance(importance_type="gain")
        self.weights_ = gain / gain.sum() if gain.sum() > 0 else np.full(P.shape[1], 1.0 / P.shape[1])
        return self

    def predict(self, P: np.ndarray) -> np.ndarray:
        """(n, m) -> (n,)."""
        P = check_predict_input(self, P, dtype=np.float64, ensure_all_finite=True)
        return self.booster_.predict(P)


META_LEARNERS = {"nnls": NonNegativeLinearStack, "lgbm": LGBMStack}
