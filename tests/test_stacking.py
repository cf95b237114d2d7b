"""Stacking: time folds, out-of-fold leakage, meta-learner inputs, NNLS, stack quality, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone

from models.gbdt import CatBoostRegressor, LightGBMRegressor, XGBoostRegressor
from models.mlp_head import MLPRegressorHead
from models.meta_learners import LGBMStack, NonNegativeLinearStack
from models.stacking import StackedEnsemble, oof_predictions, time_folds

HOUR = 3600.0


class Recorder(RegressorMixin, BaseEstimator):
    """Learns nothing; remembers the row ids (feature 0) it was fitted and early-stopped on.

    ``predict`` returns this model's position in ``log``, so every OOF value names its model.
    """

    def __init__(self, *, log=None):
        self.log = log

    def fit(self, X, y, X_val=None, y_val=None):
        self.fit_ids_ = X[:, 0].astype(int)
        self.es_ids_ = X_val[:, 0].astype(int) if X_val is not None else np.array([], dtype=int)
        self.model_id_ = len(self.log)
        self.log.append(self)
        return self

    def predict(self, X):
        return np.full(len(X), float(self.model_id_))


class RecordingMeta(RegressorMixin, BaseEstimator):
    """Meta-learner stub that keeps what it was fitted on and averages its inputs."""

    def fit(self, P, y):
        self.P_, self.y_ = np.array(P), np.array(y)
        self.weights_ = np.full(P.shape[1], 1.0 / P.shape[1])
        return self

    def predict(self, P):
        return np.asarray(P).mean(axis=1)


class ColumnSubset(RegressorMixin, BaseEstimator):
    """A base learner that sees only some columns (to build learners with different signal)."""

    def __init__(self, *, estimator=None, columns: tuple[int, ...] = ()):
        self.estimator = estimator
        self.columns = columns

    def fit(self, X, y, X_val=None, y_val=None):
        cols = list(self.columns)
        self.model_ = clone(self.estimator).fit(X[:, cols], y, None if X_val is None else X_val[:, cols], y_val)
        return self

    def predict(self, X):
        return self.model_.predict(X[:, list(self.columns)])


def _rows(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (n, 3) with the row id in column 0, y (n,), post dates (n,) in seconds with many ties."""
    rng = np.random.default_rng(seed)
    postdate = rng.integers(0, 150, n) * HOUR
    X = np.column_stack([np.arange(n), rng.normal(size=(n, 2))])
    return X, rng.normal(size=n), postdate


def _lgbm(**kw) -> LightGBMRegressor:
    params = dict(n_estimators=60, learning_rate=0.2, num_leaves=7, min_data_in_leaf=10, early_stopping_rounds=10)
    return LightGBMRegressor(**{**params, **kw})


def test_expanding_oof_comes_from_earlier_rows_only():
    X, y, postdate = _rows()
    log: list[Recorder] = []
    folds = time_folds(postdate, 4, "expanding")
    oof = oof_predictions(lambda: Recorder(log=log), X, y, folds, es_fraction=0.1)
    assert len(log) == 4
    first_block = np.isnan(oof)  # block 0 is never held out
    assert first_block.sum() == 120 and postdate[first_block].max() <= postdate[~first_block].min()
    for i in np.flatnonzero(~first_block):
        model = log[int(oof[i])]
        seen = np.concatenate([model.fit_ids_, model.es_ids_])
        assert i not in seen
        assert postdate[seen].max() < postdate[i]  # strictly earlier, ties included
    for model in log:  # early stopping uses the latest part of the fold's own window
        assert postdate[model.es_ids_].min() >= postdate[model.fit_ids_].max()
        assert len(model.es_ids_) == round(0.1 * (len(model.fit_ids_) + len(model.es_ids_)))


def test_blocked_folds_purge_a_gap_around_each_block():
    X, y, postdate = _rows()
    gap = 5 * HOUR
    folds = time_folds(postdate, 4, "blocked", gap=gap)
    held_all = np.concatenate([held for _, held in folds])
    np.testing.assert_array_equal(np.sort(held_all), np.arange(len(y)))  # every row predicted once
    for train, held in folds:
        lo, hi = postdate[held].min(), postdate[held].max()
        assert not np.intersect1d(train, held).size
        assert ((postdate[train] < lo - gap) | (postdate[train] > hi + gap)).all()
        assert (np.diff(postdate[train]) >= 0).all()  # training rows in time order
    log: list[Recorder] = []
    oof = oof_predictions(lambda: Recorder(log=log), X, y, folds)
    assert np.isfinite(oof).all()
    for i in range(len(y)):
        assert i not in np.concatenate([log[int(oof[i])].fit_ids_, log[int(oof[i])].es_ids_])


def test_fold_validation():
    postdate = np.arange(10.0)
    with pytest.raises(ValueError, match="scheme"):
        time_folds(postdate, 3, "random")
    with pytest.raises(ValueError, match="cannot make"):
        time_folds(postdate, 10, "expanding")
    with pytest.raises(ValueError, match="empty training window"):
        time_folds(np.zeros(10), 3, "expanding")  # all tied: nothing is strictly earlier
    X, y, _ = _rows(10)
    with pytest.raises(RuntimeError, match="overlap"):
        oof_predictions(lambda: Recorder(log=[]), X, y, [(np.arange(6), np.arange(5, 10))])


def test_meta_learner_sees_only_train_oof_rows_and_fold_models_never_see_val():
    X, y, postdate = _rows()
    X_val = np.column_stack([10_000 + np.arange(100), np.zeros((100, 2))])
    log: list[Recorder] = []
    ens = StackedEnsemble({"a": lambda: Recorder(log=log), "b": lambda: Recorder(log=log)}, meta=RecordingMeta(),
                          n_folds=4).fit(X, y, postdate, X_val, np.full(100, 99.0))
    meta = ens.meta_model_
    n_oof = int(ens.oof_mask_.sum())
    assert n_oof == 480 and meta.P_.shape == (n_oof, 2)
    np.testing.assert_array_equal(meta.y_, y[ens.oof_mask_])
    np.testing.assert_array_equal(meta.P_, ens.oof_[ens.oof_mask_])
    fold_models, refits = log[:8], log[8:]
    assert all(m.fit_ids_.max() < 10_000 and m.es_ids_.max() < 10_000 for m in fold_models)
    assert [m.es_ids_.min() for m in refits] == [10_000, 10_000]  # only the refits early-stop on val
    assert ens.weights_ == {"a": 0.5, "b": 0.5}


def test_fold_learners_fit_the_folds_and_base_learners_the_refits():
    X, y, postdate = _rows()
    X_val = np.column_stack([10_000 + np.arange(100), np.zeros((100, 2))])
    fold_log: list[Recorder] = []
    refit_log: list[Recorder] = []
    ens = StackedEnsemble({"a": lambda: Recorder(log=refit_log), "b": lambda: Recorder(log=refit_log)},
                          meta=RecordingMeta(), n_folds=4, fold_learners={"a": lambda: Recorder(log=fold_log)})
    ens.fit(X, y, postdate, X_val, np.zeros(100))
    assert len(fold_log) == 4 and len(refit_log) == 4 + 2  # "a": folds from fold_learners; "b": folds + both refits
    assert all(m.es_ids_.max() < 10_000 for m in fold_log)
    assert set(ens.base_models_["a"].es_ids_) == set(range(10_000, 10_100))
    assert set(ens.fit_seconds_) == {"a", "b"} and set(ens.fit_seconds_["a"]) == {"folds", "refit"}
    with pytest.raises(ValueError, match="not base learners"):
        StackedEnsemble({"a": lambda: Recorder(log=[])}, fold_learners={"z": Recorder}).fit(X, y, postdate)


def test_val_labels_only_affect_the_refits():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 4))
    y = X[:, 0] + rng.normal(scale=0.3, size=500)
    postdate = np.arange(500) * HOUR
    learners = {"lgbm": _lgbm(), "mlp": MLPRegressorHead(hidden_layer_sizes=(8,), max_epochs=15, batch_size=64)}
    a = StackedEnsemble(learners, n_folds=3).fit(X[:400], y[:400], postdate[:400], X[400:], y[400:])
    b = StackedEnsemble(learners, n_folds=3).fit(X[:400], y[:400], postdate[:400], X[400:], -y[400:] + 50)
    np.testing.assert_array_equal(a.oof_, b.oof_)
    assert a.weights_ == b.weights_ and a.intercept_ == b.intercept_


def test_nnls_recovers_known_non_negative_weights():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(2000, 3))
    y = 0.5 + 0.7 * P[:, 0] + 0.3 * P[:, 1] + rng.normal(scale=0.01, size=2000)
    meta = NonNegativeLinearStack().fit(P, y)
    np.testing.assert_allclose(meta.weights_, [0.7, 0.3, 0.0], atol=0.01)
    assert meta.intercept_ == pytest.approx(0.5, abs=0.01)
    negative = NonNegativeLinearStack().fit(P, P[:, 0] - 0.5 * P[:, 1])
    assert (negative.weights_ >= 0).all() and negative.weights_[1] == 0.0


def _two_signal_problem(n: int = 900, seed: int = 0):
    """y = f(x0, x1) + g(x4, x5) + noise; learner "left" sees x0..x3, "right" sees x4..x7."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = X[:, 0] + np.sin(2 * X[:, 1]) + X[:, 4] + np.abs(X[:, 5]) + rng.normal(scale=0.2, size=n)
    learners = {"left": ColumnSubset(estimator=_lgbm(), columns=(0, 1, 2, 3)),
                "right": ColumnSubset(estimator=_lgbm(), columns=(4, 5, 6, 7))}
    return X, y, np.arange(n) * HOUR, learners


@pytest.mark.parametrize("meta", ["nnls", "lgbm"])
def test_stack_beats_best_single_learner(meta):
    X, y, postdate, learners = _two_signal_problem()
    tr, va, te = slice(0, 600), slice(600, 750), slice(750, 900)
    ens = StackedEnsemble(learners, meta=meta, n_folds=3).fit(X[tr], y[tr], postdate[tr], X[va], y[va])
    mse = {name: np.mean((p - y[te]) ** 2) for name, p in ens.predict_base(X[te]).items()}
    stack_mse = np.mean((ens.predict(X[te]) - y[te]) ** 2)
    assert stack_mse < 0.8 * min(mse.values())
    assert set(ens.oof_metrics_) == {"left", "right", "stack_in_sample"}
    assert all(w >= 0 for w in ens.weights_.values())


def test_lgbm_stack_fits_oof_columns():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(500, 2))
    y = P.sum(axis=1) + rng.normal(scale=0.1, size=500)
    meta = LGBMStack(n_estimators=100, learning_rate=0.1).fit(P, y)
    assert np.mean((meta.predict(P) - y) ** 2) < 0.2 * np.var(y)
    assert meta.weights_.sum() == pytest.approx(1.0)


def test_same_seed_same_stack():
    X, y, postdate, _ = _two_signal_problem(n=500)
    learners = {"lgbm": _lgbm(),
                "catboost": CatBoostRegressor(n_estimators=40, learning_rate=0.2, depth=3, early_stopping_rounds=10),
                "xgboost": XGBoostRegressor(n_estimators=40, learning_rate=0.2, max_depth=3, early_stopping_rounds=10),
                "mlp": MLPRegressorHead(hidden_layer_sizes=(8,), max_epochs=10, batch_size=64)}
    fits = [StackedEnsemble(learners, n_folds=3, scheme=scheme).fit(X[:400], y[:400], postdate[:400],
                                                                     X[400:450], y[400:450])
            for scheme in ("expanding", "expanding", "blocked")]
    np.testing.assert_array_equal(fits[0].oof_, fits[1].oof_)
    np.testing.assert_array_equal(fits[0].predict(X[450:]), fits[1].predict(X[450:]))
    assert fits[0].weights_ == fits[1].weights_
    assert np.isfinite(fits[2].oof_).all()  # blocked: every train row has an OOF prediction


def test_layout_learners_get_their_columns_from_the_feature_names():
    from models.learners import create_learner
    from models.sequence_head import SequenceHeadRegressor
    from models.train_stack import StackConfig

    names = ["a", "seq_nb0_sim", "b"] + [f"seq_nb{i}_{f}" for i in range(2) for f in ("label", "has_label")] \
        + ["seq_nb1_sim", "seq_nb0_gap_days", "seq_nb1_gap_days", "seq_nb0_same_user", "seq_nb1_same_user"]
    head = create_learner("sequence", {"max_epochs": 1}, (), tuple(names))
    assert isinstance(head, SequenceHeadRegressor)
    grid = np.asarray(head.sequence_columns)
    assert grid.shape == (2, 5)
    assert {names[j] for j in grid[0]} == {f"seq_nb0_{f}" for f in ("label", "has_label", "sim", "gap_days", "same_user")}
    with pytest.raises(ValueError, match="needs the feature names"):
        create_learner("sequence", {})
    ens = StackConfig(learners=("sequence",), learner_params={"sequence": {"max_epochs": 1}}).ensemble((), tuple(names))
    assert np.array_equal(np.asarray(ens.base_learners["sequence"]().sequence_columns), grid)
