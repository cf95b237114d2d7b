"""Per-learner column subsets of the stack (ColumnSubset, learner_feature_groups), embedding tables
as model inputs, and the train-vocabulary user-id group."""

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from featurestore.embeddings import embedding_columns, embedding_prefix, embedding_table
from models.gbdt import LightGBMRegressor
from models.learners import ColumnSubset, create_learner
from models.train_stack import StackConfig, fit_stack


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 4] = rng.integers(0, 4, n)  # a categorical code
    y = 2 * X[:, 0] + X[:, 2] + (X[:, 4] == 1) + rng.normal(scale=0.1, size=n)
    return X, y


def test_column_subset_sees_only_its_columns_and_maps_categoricals():
    X, y = _data()
    est = create_learner("lgbm", {"n_estimators": 30, "num_threads": 1}, categorical=(4,),
                         feature_names=tuple("abcde"), columns=(0, 4))
    assert isinstance(est, ColumnSubset) and isinstance(est.estimator, LightGBMRegressor)
    assert est.estimator.categorical_features == (1,)  # column 4 of X is column 1 of the subset
    est.fit(X[:200], y[:200], X[200:250], y[200:250])
    assert est.estimator_.n_features_in_ == 2 and est.n_features_in_ == 5
    assert est.best_iteration_ == est.estimator_.best_iteration_
    Z = X[250:].copy()
    Z[:, [1, 2, 3]] = 1e6  # columns outside the subset cannot change a prediction
    np.testing.assert_array_equal(est.predict(Z), est.predict(X[250:]))
    changed = X[250:].copy()
    changed[:, 0] += 3.0
    assert not np.allclose(est.predict(changed), est.predict(X[250:]))
    with pytest.raises(ValueError, match="columns"):
        est.predict(X[250:, :4])
    with pytest.raises(ValueError, match="non-empty"):
        ColumnSubset(LightGBMRegressor(), ()).fit(X, y)


def test_layout_learner_gets_the_subset_names():
    names = ("x", "emb_minilm_0", "emb_minilm_1", "img_a", "user_n", "base_cat_category_code",
             "base_cat_subcategory_code", "base_cat_concept_code", "id_user_code", "seq_nb0_sim")
    est = create_learner("ppcl", {"max_epochs": 1}, (), names, columns=(1, 2, 3, 4, 5, 6, 7, 8))
    inner = est.estimator
    assert inner.text_columns == (0, 1) and inner.image_columns == (2,) and inner.user_id_column == 7
    with pytest.raises(ValueError, match="missing"):  # without the id group PPCL names what it lacks
        create_learner("ppcl", {}, (), names, columns=(1, 2, 3, 4, 5, 6, 7))


def test_stack_config_groups_and_columns():
    cfg = StackConfig(feature_groups=("g1", "g2"), learners=("lgbm", "catboost"),
                      learner_feature_groups={"catboost": ["g1", "g2", "g3"]})
    assert cfg.all_groups == ("g1", "g2", "g3")
    names = ["a", "b", "c", "d"]
    cols = cfg.learner_columns({"g1": ["a"], "g2": ["b", "c"], "g3": ["d"]}, names)
    assert cols == {"lgbm": (0, 1, 2), "catboost": None, "interval": (0, 1, 2)}
    only = StackConfig(feature_groups=("g1",), learners=("lgbm",), learner_feature_groups={"ppcl": ["g1", "g9"]})
    assert only.all_groups == ("g1",)  # groups of a learner that is not in the stack are not loaded
    assert "embed_minilm" in StackConfig().all_groups and "embed_minilm" not in StackConfig(learners=("lgbm",)).all_groups
    with pytest.raises(ValueError, match="not loaded"):
        cfg.learner_columns({"g1": ["a"], "g2": ["b", "c"]}, names[:3])


def test_fit_stack_with_a_learner_on_extra_groups():
    X, y = _data(400, seed=1)
    rng = np.random.default_rng(2)
    split = np.where(np.arange(400) < 300, "train", np.where(np.arange(400) < 350, "val", "test"))
    names = ["a", "b", "c", "d", "e_code"]
    frame = pl.DataFrame({"pid": np.arange(400), "split": split, "label": y,
                          **{n: X[:, j] for j, n in enumerate(names)}})
    cfg = StackConfig(feature_groups=("base",), learners=("lgbm", "xgboost"), n_folds=2, quantiles=(),
                      learner_params={"lgbm": {"n_estimators": 30, "num_threads": 1},
                                      "xgboost": {"n_estimators": 30, "nthread": 1}},
                      learner_feature_groups={"xgboost": ["base", "extra"]})
    groups = {"base": ["a", "b", "c"], "extra": ["d", "e_code"]}
    preds, bundle, info = fit_stack(frame, names, np.arange(400) * 3600.0 + rng.random(400), cfg, groups)
    assert info["n_features_per_learner"] == {"lgbm": 3, "xgboost": 5, "interval": 3}
    models = bundle.ensemble.base_models_
    assert models["lgbm"].estimator_.n_features_in_ == 3 and models["lgbm"].columns == (0, 1, 2)
    assert models["xgboost"].n_features_in_ == 5 and not isinstance(models["xgboost"], ColumnSubset)
    assert bundle.feature_groups == ("base", "extra")
    assert preds["pred"].is_finite().all()


def test_embedding_table_becomes_one_column_per_dimension():
    emb = np.arange(12, dtype=np.float32).reshape(3, 4)
    table = embedding_table(np.array([7, 5, 6]), np.array([70, 50, 60]), emb)
    out = embedding_columns(table, embedding_prefix("embed_minilm"))
    assert out.column_names == ["pid", "postdate", "emb_minilm_0", "emb_minilm_1", "emb_minilm_2", "emb_minilm_3"]
    assert out["pid"].to_pylist() == [5, 6, 7]  # the table's (pid) order
    assert out["emb_minilm_2"].to_pylist() == [6.0, 10.0, 2.0] and out["emb_minilm_2"].type == pa.float32()


def test_ids_group_codes_only_train_users(tmp_path):
    from feature_tables import write_tables

    from featurestore.feature_groups import build_group
    from featurestore.paths import Paths

    rows = [{"pid": 1, "uid": "b@N1", "postdate": 10, "label": 3.0, "split": "train"},
            {"pid": 2, "uid": "a@N1", "postdate": 20, "label": 4.0, "split": "train"},
            {"pid": 3, "uid": "b@N1", "postdate": 30, "label": 5.0, "split": "val"},
            {"pid": 4, "uid": "c@N1", "postdate": 40, "label": 6.0, "split": "val"},   # first seen in val
            {"pid": 5, "uid": "a@N1", "postdate": 50, "label": None, "split": "test"},
            {"pid": 6, "uid": "d@N1", "postdate": 60, "label": None, "split": "test"}]  # only in test
    write_tables(tmp_path, rows)
    table = build_group("ids", Paths(root=tmp_path), {})
    assert table.column_names == ["pid", "postdate", "id_user_code"]
    codes = dict(zip(table["pid"].to_pylist(), table["id_user_code"].to_pylist()))
    assert codes == {1: 1, 2: 0, 3: 1, 4: None, 5: 0, 6: None}  # sorted train uids a, b -> 0, 1


def test_fold_params_override_learner_params_for_the_fold_fits_only():
    cfg = StackConfig(learners=("lgbm", "mlp"), learner_params={"lgbm": {"learning_rate": 0.05, "num_leaves": 15}},
                      fold_params={"lgbm": {"learning_rate": 0.1}, "mlp": {}})
    ens = cfg.ensemble(categorical=(), names=tuple("abcde"))
    assert set(ens.fold_learners) == {"lgbm"}  # an empty override means the learner's own params
    fold, refit = ens.fold_learners["lgbm"](), ens.base_learners["lgbm"]()
    assert (fold.learning_rate, fold.num_leaves) == (0.1, 15) and (refit.learning_rate, refit.num_leaves) == (0.05, 15)
    quiet = StackConfig(learners=("lgbm",), fold_params={"xgboost": {"learning_rate": 0.1}},
                        learner_params={"ppcl": {"max_epochs": 3}})  # known learners, off: kept unused
    assert set(quiet.ensemble(categorical=(), names=tuple("abcde")).fold_learners) == set()
    for bad in ({"fold_params": {"xgbost": {}}}, {"learner_params": {"lgb": {}}}, {"learners": ("lgbm", "svm")}):
        with pytest.raises(ValueError, match="unknown"):
            StackConfig(**{"learners": ("lgbm",), **bad})
