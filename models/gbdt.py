"""Gradient-boosting base learners as scikit-learn-style estimators.

Three wrappers share one interface, so the stacking code can treat them alike:

    est = LightGBMRegressor(...)   # or CatBoostRegressor(...), XGBoostRegressor(...)
    est.fit(X, y, X_val=None, y_val=None, num_boost_round=None) -> est
    # LightGBMRegressor.fit also takes sample_weight (recency weights, models.drift)
    est.predict(X) -> (n,) float64
    est.best_iteration_   # trees kept: early-stopped on (X_val, y_val), else n_estimators
    est.n_features_in_

``__init__`` stores only its keyword arguments; ``fit`` learns ``booster_`` (the library's
model object) and ``best_iteration_``. ``X`` is (n, d) numeric with NaN = missing;
``categorical_features`` are indices of integer-coded categorical columns (the ``_code``
columns of the model matrix, ``models.matrix``). Every model is single-process, seeded and
deterministic for a fixed thread count. LightGBM and XGBoost also train data-parallel over
``data_parallel_workers`` Ray Train workers (``models.gbdt_data_parallel``; needs the Ray executor).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import _check_sample_weight

from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input
from models.gbdt_data_parallel import train_booster

CAT_MISSING = "-1"  # CatBoost category string for a missing (NaN) code
SMALL_BATCH = 64  # rows predicted on one thread (a served request): starting threads costs more than it saves


def _small_batch(X: np.ndarray, threads_arg: str) -> dict:
    """The predict keyword that runs ``X`` on one thread when it is a small batch (a row's
    prediction does not depend on the thread count)."""
    return {threads_arg: 1} if len(X) <= SMALL_BATCH else {}


class LightGBMRegressor(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """LightGBM with early stopping on an explicit validation set.

    ``categorical_features``: indices of integer-coded categorical columns (NaN = missing).
    ``quantile``: None for the L2 objective (the mean); a level in (0, 1) for the pinball loss
    (that quantile of the label), early-stopped on the same loss.
    ``data_parallel_workers``: None trains here; N >= 2 trains one model over N Ray Train workers,
    each holding 1/N of the rows and ``num_threads`` threads (``models.gbdt_data_parallel``).
    """

    def __init__(self, *, learning_rate: float = 0.05, num_leaves: int = 63, min_data_in_leaf: int = 40,
                 feature_fraction: float = 0.8, bagging_fraction: float = 0.8, bagging_freq: int = 1,
                 lambda_l2: float = 1.0, n_estimators: int = 3000, early_stopping_rounds: int = 100,
                 num_threads: int = 2, seed: int = 42, categorical_features: tuple[int, ...] = (),
                 quantile: float | None = None, data_parallel_workers: int | None = None):
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
        self.quantile = quantile
        self.data_parallel_workers = data_parallel_workers

    def _lgb_params(self) -> dict:
        objective = {"objective": "regression"} if self.quantile is None else \
            {"objective": "quantile", "alpha": self.quantile, "metric": "quantile"}
        return {**objective, "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
                "bagging_fraction": self.bagging_fraction, "bagging_freq": self.bagging_freq,
                "lambda_l2": self.lambda_l2, "num_threads": self.num_threads, "seed": self.seed,
                "deterministic": True, "force_row_wise": True, "verbosity": -1}

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            num_boost_round: int | None = None, sample_weight: np.ndarray | None = None) -> "LightGBMRegressor":
        """Fit on (X, y); with (X_val, y_val), stop when val L2 has not improved for early_stopping_rounds.

        ``num_boost_round`` fixes the number of trees (used to refit with a chosen iteration count).
        ``sample_weight``: (n,) non-negative weights of the training rows (None: all 1); the
        validation rows are never weighted.
        """
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False,
                                              ensure_min_samples=2)
        weight = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=np.float64)
        early = X_val is not None and num_boost_round is None
        if self.data_parallel_workers:
            text, self.best_iteration_ = train_booster(
                "lightgbm", self._lgb_params(), X, y, X_val=X_val if early else None, y_val=y_val, weight=weight,
                num_boost_round=num_boost_round or self.n_estimators, workers=self.data_parallel_workers,
                early_stopping_rounds=self.early_stopping_rounds if early else None,
                categorical=tuple(self.categorical_features))
            self.booster_ = lgb.Booster(model_str=text)
            return self
        cats = list(self.categorical_features)
        train = lgb.Dataset(X, y, weight=weight, categorical_feature=cats, free_raw_data=True)
        callbacks, valid = [], []
        if early:
            valid = [lgb.Dataset(X_val, y_val, reference=train, categorical_feature=cats)]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(self._lgb_params(), train, num_boost_round=num_boost_round or self.n_estimators,
                                  valid_sets=valid, callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = check_predict_input(self, X, ensure_all_finite=False)
        return self.booster_.predict(X, num_iteration=self.best_iteration_, **_small_batch(X, "num_threads"))


class CatBoostRegressor(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """CatBoost (RMSE) with native categoricals and early stopping on an explicit validation set.

    The ``categorical_features`` columns are cast to int and then to strings (NaN -> ``"-1"``)
    and handled by CatBoost's ordered target statistics; all other columns are float features.
    With (X_val, y_val) the model keeps the best validation iteration (``use_best_model``).
    """

    def __init__(self, *, learning_rate: float = 0.05, depth: int = 6, l2_leaf_reg: float = 3.0,
                 n_estimators: int = 3000, early_stopping_rounds: int = 100, thread_count: int = 2,
                 random_seed: int = 42, categorical_features: tuple[int, ...] = ()):
        self.learning_rate = learning_rate
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.thread_count = thread_count
        self.random_seed = random_seed
        self.categorical_features = categorical_features

    def _pool(self, X: np.ndarray, y: np.ndarray | None = None):
        """(n, d) float matrix -> catboost.Pool of float columns then categorical string columns."""
        import catboost as cb  # imported where used: only the catboost learner needs the package

        cats = np.asarray(self.categorical_features, dtype=np.int64)
        nums = np.setdiff1d(np.arange(X.shape[1]), cats)
        if cats.size == 0:
            return cb.Pool(np.ascontiguousarray(X[:, nums]), label=y)
        codes = X[:, cats]
        text = np.where(np.isnan(codes), -1, codes).astype(np.int64).astype(str).astype(object)  # NaN -> CAT_MISSING
        data = cb.FeaturesData(num_feature_data=np.ascontiguousarray(X[:, nums]) if nums.size else None,
                               cat_feature_data=text)
        return cb.Pool(data, label=y)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            num_boost_round: int | None = None) -> "CatBoostRegressor":
        """Fit on (X, y); with (X_val, y_val) early-stop on val RMSE; ``num_boost_round`` fixes the tree count."""
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_min_samples=2)
        early = X_val is not None and num_boost_round is None
        import catboost as cb

        self.booster_ = cb.CatBoost({
            "loss_function": "RMSE", "learning_rate": self.learning_rate, "depth": self.depth,
            "l2_leaf_reg": self.l2_leaf_reg, "iterations": num_boost_round or self.n_estimators,
            "thread_count": self.thread_count, "random_seed": self.random_seed, "allow_writing_files": False,
            "logging_level": "Silent", "use_best_model": early,
            **({"od_type": "Iter", "od_wait": self.early_stopping_rounds} if early else {})})
        self.booster_.fit(self._pool(X, y), eval_set=self._pool(X_val, y_val) if early else None)
        self.best_iteration_ = int(self.booster_.tree_count_)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = check_predict_input(self, X)
        return np.asarray(self.booster_.predict(self._pool(X), **_small_batch(X, "thread_count")), dtype=np.float64)


class XGBoostRegressor(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """XGBoost (squared error, ``hist`` trees) with early stopping on an explicit validation set.

    Categorical codes are split on as ordinary numbers unless ``enable_categorical`` is set,
    in which case the ``categorical_features`` columns use XGBoost's native categorical splits
    (codes must then be non-negative integers). ``data_parallel_workers``: None trains here; N >= 2
    trains one model over N Ray Train workers (``models.gbdt_data_parallel``).
    """

    def __init__(self, *, learning_rate: float = 0.05, max_depth: int = 6, min_child_weight: float = 1.0,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 n_estimators: int = 3000, early_stopping_rounds: int = 100, nthread: int = 2, seed: int = 42,
                 categorical_features: tuple[int, ...] = (), enable_categorical: bool = False,
                 data_parallel_workers: int | None = None):
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.nthread = nthread
        self.seed = seed
        self.categorical_features = categorical_features
        self.enable_categorical = enable_categorical
        self.data_parallel_workers = data_parallel_workers

    def _feature_types(self, d: int) -> list[str]:
        cats = set(self.categorical_features)
        return ["c" if j in cats else "q" for j in range(d)]

    def _dmatrix(self, X: np.ndarray, y: np.ndarray | None = None) -> xgb.DMatrix:
        if not self.enable_categorical:
            return xgb.DMatrix(X, label=y, missing=np.nan, nthread=self.nthread)
        return xgb.DMatrix(X, label=y, missing=np.nan, nthread=self.nthread,
                           feature_types=self._feature_types(X.shape[1]), enable_categorical=True)

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            num_boost_round: int | None = None) -> "XGBoostRegressor":
        """Fit on (X, y); with (X_val, y_val) early-stop on val RMSE; ``num_boost_round`` fixes the tree count."""
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_min_samples=2)
        params = {"objective": "reg:squarederror", "eval_metric": "rmse", "tree_method": "hist",
                  "learning_rate": self.learning_rate, "max_depth": self.max_depth,
                  "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                  "colsample_bytree": self.colsample_bytree, "lambda": self.reg_lambda,
                  "nthread": self.nthread, "seed": self.seed, "verbosity": 0}
        early = X_val is not None and num_boost_round is None
        if self.data_parallel_workers:
            text, self.best_iteration_ = train_booster(
                "xgboost", params, X, y, X_val=X_val if early else None, y_val=y_val,
                num_boost_round=num_boost_round or self.n_estimators, workers=self.data_parallel_workers,
                early_stopping_rounds=self.early_stopping_rounds if early else None,
                feature_types=self._feature_types(X.shape[1]) if self.enable_categorical else None)
            self.booster_ = xgb.Booster()
            self.booster_.load_model(bytearray(text.encode()))
            self.booster_.set_param({"nthread": self.nthread})
            return self
        self.booster_ = xgb.train(params, self._dmatrix(X, y), num_boost_round=num_boost_round or self.n_estimators,
                                  evals=[(self._dmatrix(X_val, y_val), "val")] if early else (),
                                  early_stopping_rounds=self.early_stopping_rounds if early else None,
                                  verbose_eval=False)
        self.best_iteration_ = int(self.booster_.best_iteration + 1 if early else self.booster_.num_boosted_rounds())
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = check_predict_input(self, X)
        if len(X) <= SMALL_BATCH and not self.enable_categorical:  # no DMatrix to build: a request's few posts
            self.booster_.set_param({"nthread": 1})
            try:
                pred = self.booster_.inplace_predict(X, iteration_range=(0, self.best_iteration_), missing=np.nan)
            finally:
                self.booster_.set_param({"nthread": self.nthread})
        else:
            pred = self.booster_.predict(self._dmatrix(X), iteration_range=(0, self.best_iteration_))
        return np.asarray(pred, dtype=np.float64)
