"""Registry of base learners for the stack: name -> estimator class, built from params.

A learner may read only some of the stack's columns (``train_stack.learner_feature_groups``):
``create_learner(..., columns=...)`` wraps it in ``ColumnSubset``, which hands it those columns
(with their names and categorical positions) in fit and predict.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from models.estimator_checks import AllowNaNMixin
from models.gbdt import CatBoostRegressor, LightGBMRegressor, XGBoostRegressor
from models.mlp_head import MLPRegressorHead
from models.ppcl import PPCLRegressor
from models.sequence_head import SequenceHeadRegressor

LEARNERS = {
    "lgbm": LightGBMRegressor,
    "catboost": CatBoostRegressor,
    "xgboost": XGBoostRegressor,
    "mlp": MLPRegressorHead,
    "sequence": SequenceHeadRegressor,
    "ppcl": PPCLRegressor,
}
_CATEGORICAL_AWARE = {"lgbm", "catboost", "xgboost"}


def list_learners() -> list[str]:
    return sorted(LEARNERS)


class ColumnSubset(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """``estimator`` fitted and applied on ``X[:, columns]`` only; same fit interface as the base learners."""

    def __init__(self, estimator=None, columns: tuple[int, ...] = ()):
        self.estimator = estimator
        self.columns = columns

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round: int | None = None) -> "ColumnSubset":
        cols = np.asarray(self.columns, dtype=np.int64)
        X = np.asarray(X)
        if cols.size == 0 or cols.min() < 0 or cols.max() >= X.shape[1]:
            raise ValueError(f"ColumnSubset: columns must be non-empty indices into {X.shape[1]} columns")
        kw = {} if num_boost_round is None else {"num_boost_round": num_boost_round}
        X_val = None if X_val is None else np.asarray(X_val)[:, cols]
        self.estimator_ = clone(self.estimator).fit(X[:, cols], y, X_val, y_val, **kw)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"ColumnSubset: X has {X.shape[-1]} columns, fitted on {self.n_features_in_}")
        return self.estimator_.predict(X[:, np.asarray(self.columns, dtype=np.int64)])

    @property
    def best_iteration_(self):
        return getattr(self.estimator_, "best_iteration_", None)


def create_learner(name: str, params: dict | None = None, categorical: tuple[int, ...] = (),
                   feature_names: tuple[str, ...] | None = None, columns: tuple[int, ...] | None = None):
    """A fresh, unfitted learner. ``params`` are its keyword arguments (unknown ones raise TypeError).

    Learners that read a column layout (``from_feature_names``: the sequence head, PPCL) need
    ``feature_names``. With ``columns`` the learner sees only those columns of X (``ColumnSubset``);
    ``categorical`` and ``feature_names`` still describe all of X and are mapped onto the subset.
    """
    if columns is None:
        return _create(name, params, categorical, feature_names)
    cols = tuple(int(c) for c in columns)
    pos = {c: i for i, c in enumerate(cols)}
    sub_names = None if feature_names is None else tuple(feature_names[c] for c in cols)
    inner = _create(name, params, tuple(pos[c] for c in categorical if c in pos), sub_names)
    return ColumnSubset(inner, cols)


def _create(name: str, params: dict | None, categorical: tuple[int, ...], feature_names: tuple[str, ...] | None):
    try:
        cls = LEARNERS[name]
    except KeyError:
        raise KeyError(f"unknown learner {name!r}; known: {list_learners()}") from None
    kw = dict(params or {})
    if name in _CATEGORICAL_AWARE:
        kw.setdefault("categorical_features", tuple(categorical))
    if hasattr(cls, "from_feature_names"):
        if feature_names is None:
            raise ValueError(f"learner {name!r} needs the feature names to find its columns")
        return cls.from_feature_names(list(feature_names), **kw)
    return cls(**kw)
