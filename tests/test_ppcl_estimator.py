"""PPCLRegressor: learning, determinism, joblib, early stopping, train-only K-means, feature-name layout."""

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

from models.ppcl import PPCLRegressor

NAMES = ([f"emb_minilm_{i}" for i in range(8)] + ["img_a", "img_b", "img_c"]
         + ["user_photo_count", "user_age", "crawl_log_followers", "crawl_log_views", "user_pro_code"]
         + ["base_cat_category_code", "base_cat_subcategory_code", "base_cat_concept_code", "id_user_code"])
SMALL = dict(hidden=16, proj_dim=8, cat_dim=4, batch_size=64, max_epochs=8, patience=3, lr=3e-3, n_clusters=5)


def _data(n=600, seed=0):
    """Columns as NAMES; y depends on text, user id, followers and the category."""
    rng = np.random.default_rng(seed)
    text, img = rng.normal(size=(n, 8)), rng.normal(size=(n, 3))
    num = rng.exponential(size=(n, 4))
    pro = rng.integers(0, 2, n)
    cat = rng.integers(0, 3, n)
    sub = cat * 3 + rng.integers(0, 3, n)
    con = sub * 4 + rng.integers(0, 4, n)
    uid = rng.integers(0, 40, n)
    y = 2 * text[:, 0] + rng.normal(size=40)[uid] + 0.5 * np.log1p(num[:, 2]) + 0.3 * cat + 0.2 * rng.normal(size=n)
    X = np.column_stack([text, img, num, pro, cat, sub, con, uid]).astype(np.float64)
    X[rng.random(n) < 0.03, 19] = np.nan  # a few unknown concepts
    return X, y


def _model(**kw):
    return PPCLRegressor.from_feature_names(NAMES, **{**SMALL, **kw})


def test_from_feature_names_maps_roles_and_names_what_is_missing():
    m = _model()
    assert m.text_columns == tuple(range(8)) and m.image_columns == (8, 9, 10)
    assert m.user_numeric_columns == (11, 12, 13, 14) and m.user_categorical_columns == (15,)
    assert m.category_columns == (16, 17, 18) and m.user_id_column == 19
    assert m.influence_columns == (13,)  # the follower column
    assert _model(influence_columns=["user_age", "crawl_log_views"]).influence_columns == (12, 14)
    with pytest.raises(ValueError, match="id_user_code"):
        PPCLRegressor.from_feature_names([n for n in NAMES if n != "id_user_code"])
    with pytest.raises(ValueError, match="base_cat_concept_code.*text or image"):
        PPCLRegressor.from_feature_names(["user_x", "base_cat_category_code"])


def test_learns_the_synthetic_signal_with_all_tasks():
    X, y = _data()
    m = _model(max_epochs=15).fit(X[:450], y[:450], X[450:525], y[450:525])
    assert {"crd", "uisd", "uid", "mse"} <= set(m.history_[0])
    mse = np.mean((m.predict(X[525:]) - y[525:]) ** 2)
    assert mse < 0.5 * np.mean((y[525:] - y[:450].mean()) ** 2)
    assert m.transform(X[:7]).shape == (7, 16) and m.transform(X[:7]).dtype == np.float32


def test_deterministic_joblib_round_trip_and_global_state_untouched(tmp_path):
    X, y = _data(300)
    torch.manual_seed(123)
    threads, before = torch.get_num_threads(), torch.rand(3)
    torch.manual_seed(123)
    a = _model(max_epochs=3, num_threads=1).fit(X[:200], y[:200], X[200:250], y[200:250])
    assert torch.equal(torch.rand(3), before) and torch.get_num_threads() == threads
    b = clone(a).fit(X[:200], y[:200], X[200:250], y[200:250])
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    joblib.dump(a, tmp_path / "ppcl.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "ppcl.joblib").predict(X), a.predict(X))


def test_early_stopping_keeps_the_best_val_epoch_and_fixed_rounds():
    X, y = _data(400)
    noise = np.random.default_rng(1).normal(size=100) * 5  # val labels unrelated to X: stop early
    m = _model(max_epochs=30, patience=2, lr=1e-2).fit(X[:300], y[:300], X[300:], noise)
    best = m.best_iteration_
    assert 1 <= best < 30 and len(m.val_mse_) == len(m.history_) <= best + 2
    assert best == int(np.argmin(m.val_mse_)) + 1
    assert np.mean((m.predict(X[300:]) - noise) ** 2) == pytest.approx(m.val_mse_[best - 1], rel=1e-6)
    fixed = _model().fit(X[:300], y[:300], X[300:], noise, num_boost_round=3)
    assert fixed.best_iteration_ == len(fixed.history_) == 3 and fixed.val_mse_ == []
    assert _model(max_epochs=2).fit(X[:300], y[:300]).best_iteration_ == 2


def test_influence_clusters_fitted_on_train_rows_only():
    X, y = _data(400)
    X_val = X[300:].copy()
    a = _model(max_epochs=1).fit(X[:300], y[:300], X_val, y[300:])
    X_val[:, 11:16] = 1e6  # every val row gets other user features
    b = _model(max_epochs=1).fit(X[:300], y[:300], X_val, y[300:])
    np.testing.assert_array_equal(a.kmeans_.cluster_centers_, b.kmeans_.cluster_centers_)
    assert a.kmeans_.n_clusters == 5 and a.kmeans_.cluster_centers_.shape == (5, 1)
    X_train = X[:300].copy()
    X_train[:50, 13] *= 10  # changing train rows does move the clusters
    c = _model(max_epochs=1).fit(X_train, y[:300], X_val, y[300:])
    assert not np.array_equal(a.kmeans_.cluster_centers_, c.kmeans_.cluster_centers_)


@pytest.mark.parametrize("weights, terms", [({"crd": 3}, {"crd"}), ((0, 1, 0), {"uisd"}), ((0, 0, 0.1), {"uid"}),
                                            ((0, 0, 0), set())])
def test_task_switches(weights, terms):
    X, y = _data(200)
    m = _model(max_epochs=1, task_weights=weights).fit(X, y)
    assert set(m.history_[0]) - {"epoch", "loss", "mse"} == terms
    assert (m.kmeans_ is not None) == ("uisd" in terms)  # no clustering when UISD is off


def test_parameter_and_layout_errors():
    X, y = _data(100)
    with pytest.raises(ValueError, match="sampler"):
        _model(sampler="random").fit(X, y)
    with pytest.raises(ValueError, match="unknown task"):
        _model(task_weights={"rnc": 1}).fit(X, y)
    with pytest.raises(ValueError, match="exactly 3"):
        PPCLRegressor(category_columns=(0, 1)).fit(X, y)
    with pytest.raises(ValueError, match="one role"):
        PPCLRegressor(text_columns=(0, 1), image_columns=(1, 2)).fit(X, y)
