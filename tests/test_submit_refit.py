"""Submit mode uses every label: refits on train + val with scaled iteration counts, every labelled
post visible to later posts' features; holdout mode (the defaults) unchanged.

(That a label still never reaches a post at or before it, and the posts to predict never reach
any feature, in submit mode: tests/test_leakage.py, rule 4.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from featurestore.config import ParamsError, config_from_dict, load_params, merge_params
from featurestore.split import SplitConfig, chronological_split
from models.learners import LEARNERS
from models.matrix import to_matrix
from models.stacking import StackedEnsemble, scaled_rounds
from models.train_gbdt import TrainConfig, fit_predict
from models.train_stack import EPOCH_LEARNERS, TREE_LEARNERS, StackConfig, fit_stack
from pipelines.runner import SUBMIT_OVERRIDES, USE_ALL_LABELS

REPO = Path(__file__).resolve().parents[1]
HOUR = 3600.0


class Counter(RegressorMixin, BaseEstimator):
    """Remembers the row ids (feature 0) it was fitted on and its iteration count; early-stops at ``best``."""

    def __init__(self, *, best: int = 10, log=None):
        self.best = best
        self.log = log

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round=None):
        self.fit_ids_ = X[:, 0].astype(int)
        self.num_boost_round_ = num_boost_round
        self.best_iteration_ = num_boost_round if num_boost_round is not None else self.best
        self.log.append(self)
        return self

    def predict(self, X):
        return X[:, 1] + len(self.fit_ids_)


def _rows(n: int, offset: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    return np.column_stack([offset + np.arange(n), rng.normal(size=n)]), rng.normal(size=n)


def test_refit_full_fits_every_learner_on_all_labelled_rows_with_scaled_iterations():
    X, y = _rows(400)
    X_val, y_val = _rows(100, offset=10_000, seed=1)
    log: list[Counter] = []
    ens = StackedEnsemble({"tree": lambda: Counter(best=40, log=log), "net": lambda: Counter(best=7, log=log)},
                          n_folds=3).fit(X, y, np.arange(400) * HOUR, X_val, y_val)
    oof, weights, meta = ens.oof_.copy(), dict(ens.weights_), ens.meta_model_
    assert ens.refit_rows_ == {"tree": 400, "net": 400}
    n_before = len(log)
    ens.refit_full(np.vstack([X, X_val]), np.r_[y, y_val], unscaled={"net"})
    refits = log[n_before:]
    assert len(refits) == 2 and [m.best for m in refits] == [40, 7]
    for m in refits:  # every train and val row, nothing else
        np.testing.assert_array_equal(np.sort(m.fit_ids_), np.r_[np.arange(400), 10_000 + np.arange(100)])
    assert ens.base_models_["tree"].num_boost_round_ == round(40 * 500 / 400) == 50  # trees x n_all / n_train
    assert ens.base_models_["net"].num_boost_round_ == 7                           # epochs kept
    assert ens.refit_full_ == {"tree": {"best_iteration": 40, "rounds": 50, "n_rows": 500},
                               "net": {"best_iteration": 7, "rounds": 7, "n_rows": 500}}
    np.testing.assert_array_equal(ens.oof_, oof)  # the meta-learner and its weights stay the train OOF fit
    assert ens.weights_ == weights and ens.meta_model_ is meta


def test_refit_without_val_scales_by_the_rows_the_internal_early_stopping_left():
    X, y = _rows(400)
    log: list[Counter] = []
    ens = StackedEnsemble({"tree": lambda: Counter(best=36, log=log)}, n_folds=2, es_fraction=0.1).fit(
        X, y, np.arange(400) * HOUR)
    assert ens.refit_rows_ == {"tree": 360}
    ens.refit_full(X, y)
    assert ens.refit_full_["tree"]["rounds"] == scaled_rounds(36, 400, 360) == 40


def _frame(n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = X[:, 0] + np.sin(2 * X[:, 1]) + rng.normal(scale=0.3, size=n)
    split = np.where(np.arange(n) < 300, "train", np.where(np.arange(n) < 400, "val",
                                                           np.where(np.arange(n) < 450, "test", "predict")))
    label = np.where(split == "predict", np.nan, y)
    frame = pl.DataFrame({"pid": np.arange(n), "split": split, "label": label,
                          **{c: X[:, j] for j, c in enumerate("abcd")}})
    return frame.with_columns(pl.col("label").fill_nan(None)), list("abcd"), np.arange(n) * HOUR


def _stack(refit_full: bool) -> StackConfig:
    return StackConfig(learners=("lgbm", "mlp"), n_folds=2, refit_full=refit_full,
                       learner_params={"lgbm": {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 7,
                                                "early_stopping_rounds": 10, "num_threads": 1},
                                       "mlp": {"hidden_layer_sizes": [8], "max_epochs": 12, "patience": 3,
                                               "batch_size": 64}})


@pytest.fixture(scope="module")
def stacks():
    frame, names, postdate = _frame()
    return frame, {r: fit_stack(frame, names, postdate, _stack(r)) for r in (False, True)}


def test_fit_stack_refit_full_refits_every_learner_and_the_interval_on_train_and_val(stacks):
    frame, fits = stacks
    _, bundle, info = fits[True]
    n_train, n_val = 300, 100
    assert (info["n_train"], info["n_val"]) == (n_train, n_val)
    best = info["best_iterations"]
    assert best == fits[False][2]["best_iterations"]  # the validation fit is the holdout fit
    refit = info["refit_full"]
    assert set(refit) == {"lgbm", "mlp", "interval_lo", "interval_hi"}
    assert all(r["n_rows"] == n_train + n_val for r in refit.values())
    assert refit["lgbm"]["rounds"] == scaled_rounds(best["lgbm"], n_train + n_val, n_train)
    assert refit["mlp"]["rounds"] == best["mlp"]  # epochs
    models = bundle.ensemble.base_models_
    assert models["lgbm"].booster_.current_iteration() == refit["lgbm"]["rounds"]
    assert models["lgbm"].booster_.num_trees() == refit["lgbm"]["rounds"]
    assert models["mlp"].best_iteration_ == best["mlp"]
    n_quantile_fit = n_train - round(0.1 * n_train)  # the quantile models early-stopped on the latest 10% of train
    for side, model in (("interval_lo", bundle.interval.lower), ("interval_hi", bundle.interval.upper)):
        assert refit[side]["rounds"] == scaled_rounds(refit[side]["best_iteration"], n_train + n_val, n_quantile_fit)
        assert model.booster_.current_iteration() == refit[side]["rounds"]
    assert bundle.interval.margin_ == fits[False][1].interval.margin_  # calibrated on val once, by the val fit


def test_refit_predicts_test_and_predict_posts_and_val_keeps_the_validation_fit(stacks):
    frame, fits = stacks
    holdout, submit = fits[False][0], fits[True][0]
    split = frame["split"].to_numpy()
    for col in ("pred", "pred_lgbm", "pred_mlp", "interval_lo", "interval_hi"):
        a, b = holdout[col].to_numpy(), submit[col].to_numpy()
        np.testing.assert_array_equal(a[np.isin(split, ["train", "val"])], b[np.isin(split, ["train", "val"])])
        later = np.isin(split, ["test", "predict"])
        assert not np.allclose(a[later], b[later]), col
    assert fits[True][2]["weights"] == fits[False][2]["weights"]
    # the saved bundle predicts as the refit rows were predicted (what the server and `smpp predict` use)
    X = to_matrix(frame, list("abcd"))
    later = np.isin(split, ["test", "predict"])
    np.testing.assert_allclose(fits[True][1].predict(X[later])["pred"], submit["pred"].to_numpy()[later])


def test_holdout_default_has_no_refit(stacks):
    _, bundle, info = stacks[1][False]
    assert info["refit_full"] is None
    assert bundle.ensemble.refit_rows_ == {"lgbm": 300, "mlp": 300} and not hasattr(bundle.ensemble, "refit_full_")


def test_train_lgbm_refit_uses_the_same_scaled_rule():
    frame, names, _ = _frame(seed=2)
    cfg = TrainConfig(n_estimators=150, learning_rate=0.1, num_leaves=7, early_stopping_rounds=10, num_threads=1,
                      refit_full=True)
    _, model, info = fit_predict(frame, names, cfg)
    assert info["refit_rounds"] == scaled_rounds(info["best_iteration"], 400, 300)
    assert model.booster_.current_iteration() == info["refit_rounds"]


def test_every_learner_says_how_its_refit_iterations_scale():
    assert set(LEARNERS) == EPOCH_LEARNERS | TREE_LEARNERS and not EPOCH_LEARNERS & TREE_LEARNERS


# ---------------------------------------------------------------- visibility

def _posts(n_lab=100, n_unlab=20):
    rng = np.random.default_rng(0)
    return pa.table({"pid": np.arange(n_lab + n_unlab), "postdate": rng.integers(0, 10**6, n_lab + n_unlab),
                     "labelled": np.r_[np.ones(n_lab, bool), np.zeros(n_unlab, bool)]})


def test_label_visible_train_and_val_never_test_or_predict():
    holdout = chronological_split(_posts(), SplitConfig(label_visible=("train", "val")))
    names = np.asarray(holdout["split"].to_pylist())
    np.testing.assert_array_equal(holdout["label_visible"].to_numpy(zero_copy_only=False),
                                  np.isin(names, ["train", "val"]))
    submit = chronological_split(_posts(), config_from_dict(SplitConfig, "split", SUBMIT_OVERRIDES["split"]))
    vis = submit["label_visible"].to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(vis, np.asarray(submit["split"].to_pylist()) != "predict")  # every labelled post
    for bad in (["train", "test"], ["val"], ["train", "val", "predict"], []):
        with pytest.raises(ParamsError, match="label_visible"):
            config_from_dict(SplitConfig, "split", {"label_visible": bad})


def test_holdout_mode_is_unchanged_by_default_and_submit_mode_switches_everything_on():
    params = load_params(REPO / "params.yaml")
    assert params["split"]["label_visible"] == ["train"]
    assert params["train_stack"]["refit_full"] is False and params["train_lgbm"]["refit_full"] is False
    assert SplitConfig().label_visible == ("train",) and StackConfig().refit_full is False
    assert TrainConfig().refit_full is False
    split = chronological_split(_posts(), SplitConfig())
    np.testing.assert_array_equal(split["label_visible"].to_numpy(zero_copy_only=False),
                                  np.asarray(split["split"].to_pylist()) == "train")
    submit = merge_params(params, SUBMIT_OVERRIDES)
    assert submit["split"] == {"fractions": [0.9, 0.1, 0.0], "label_visible": ["train", "val"]}
    assert submit["train_stack"]["refit_full"] and submit["train_lgbm"]["refit_full"]
    assert merge_params(submit, USE_ALL_LABELS) == submit  # submit mode = its fractions + USE_ALL_LABELS
