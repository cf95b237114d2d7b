"""`smpp predict`: a stored test post reproduces the pipeline's prediction; new posts get an interval."""

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from test_encoders import tiny_sentence_transformer

from featurestore.new_posts import stored_records
from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import cli
from featurestore.paths import Paths
from featurestore.standardise import Standardiser
from pipelines.predict import predict_posts
from pipelines.predictor import Predictor

# PPCL reads its own groups, the MiniLM embedding among them (a tiny random-weight model here):
# a stored post's prediction is reproduced only if the new post's text is embedded as in the stage.
PPCL_GROUPS = ["features_baseline", "features_user", "features_crawled", "features_image_stats", "features_ids",
               "embed_minilm"]
FAST = {"train_stack": {"learners": ["lgbm", "xgboost", "ppcl"], "n_folds": 2,
                        "learner_params": {"lgbm": {"n_estimators": 100, "num_threads": 1},
                                           "xgboost": {"n_estimators": 100, "nthread": 1},
                                           "ppcl": {"max_epochs": 2, "num_threads": 1}},
                        "learner_feature_groups": {"ppcl": PPCL_GROUPS}},
        "train_lgbm": {"num_threads": 1},
        "finetune_wrcr": {"proj_hidden": 16, "proj_dim": 8, "embed_dim": 6, "max_epochs": 2, "crossfit_folds": 0},
        "features_image_stats": {"progress": False, "workers": 1}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    smpd = root / "smpd"
    simulate_smpd(smpd, SimConfig(posts=700, seed=5, image_size=48, workers=1, progress=False))
    params = root / "params.yaml"
    minilm = {"weights": str(tiny_sentence_transformer(root / "st")), "options": {"dim": 16}, "progress": False}
    fast = {**FAST, "embed_minilm": minilm}
    params.write_text(json.dumps(fast))  # JSON is YAML
    cli.main(["run", "--smpd-dir", str(smpd), "--workdir", str(root / "w"), "--mode", "holdout",
              "--params", str(params)])
    return Paths(root=root / "w", smpd=smpd), fast


def test_stored_test_post_reproduces_the_pipeline(run):
    paths, params = run
    preds = pl.read_parquet(paths.table("predictions_stack"))
    test = preds.filter(pl.col("split") == "test").sort("pid")[:3]
    got = predict_posts(paths, stored_records(paths.smpd_dir, [int(p) for p in test["pid"]]), params)
    assert got["pid"].to_list() == test["pid"].to_list()
    for col in ("pred", "interval_lo", "interval_hi"):
        assert got[col].to_list() == pytest.approx(test[col].to_list(), abs=1e-9), col


def test_a_new_post_of_a_new_user(run, tmp_path, capsys):
    paths, params = run
    post = {"Uid": "999999@N99", "Postdate": "1455000000", "Title": "sunset #beach", "Alltags": "sunset beach sea",
            "Mediatype": "photo", "Category": "Travel&Active&Sports", "Subcategory": "Beach", "Concept": "sunset",
            "photo_count": 120, "ispro": 0, "timezone_offset": "+01:00", "image": "nowhere.jpg"}
    f = tmp_path / "post.json"
    f.write_text(json.dumps(post))
    out = tmp_path / "p.csv"
    p = tmp_path / "params.json"
    p.write_text(json.dumps(params))
    assert cli.main(["predict", "--post", str(f), "--root", str(paths.root), "--smpd-dir", str(paths.smpd_dir),
                     "--params", str(p), "--out", str(out)]) == 0
    row = pl.read_csv(out).row(0, named=True)
    assert 1.0 < row["pred"] < 17.0 and row["interval_lo"] < row["interval_hi"]
    assert row["pid"] > pl.read_parquet(paths.table("posts"))["pid"].max()  # a fresh Pid


def test_bad_post_is_a_clear_error(run):
    paths, params = run
    with pytest.raises(ValueError, match="Uid"):
        predict_posts(paths, [{"Postdate": "1455000000"}], params)
    with pytest.raises(Exception, match="Postdate"):
        predict_posts(paths, [{"Uid": "1@N1", "Postdate": "yesterday"}], params)


def _stored_rows(paths, table: str, pids: list[int]) -> pl.DataFrame:
    from featurestore.feature_groups import read_model_inputs

    stored = pl.from_arrow(read_model_inputs(paths, table)).drop("postdate", strict=False)
    return stored.filter(pl.col("pid").is_in(pids)).sort("pid")


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "sql"])
def test_replayed_stored_posts_get_their_stored_features(run, kernels, monkeypatch):
    """Posts of every split and several of one user, each replayed alone: every model-input table's
    online rows equal the stored batch rows (a replayed train post's own label never reaches its
    features; replayed together, a user's posts would be unlabelled for each other, as new posts are).
    ``sql``: the SQL groups through their SQL instead of their in-process kernels."""
    import pipelines.online_features

    if not kernels:
        monkeypatch.setattr(pipelines.online_features, "KERNELS", {})
    paths, params = run
    predictor = Predictor(paths, params)
    split = pl.read_parquet(paths.table("split")).join(pl.read_parquet(paths.table("posts"), columns=["pid", "uid"]),
                                                      on="pid").filter(pl.col("split").is_in(["train", "val", "test"]))
    busy = split.group_by("uid").len().sort(["len", "uid"], descending=[True, False])["uid"][0]
    pids = sorted({*split.filter(pl.col("uid") == busy)["pid"].head(4).to_list(),
                   *[split.filter(pl.col("split") == s)["pid"][7] for s in ("train", "val", "test")]})
    got = [predictor.online.rows(stored_records(paths.smpd_dir, [pid])) for pid in pids]
    for i, table in enumerate(predictor.bundle.feature_groups):
        # a frozen transformer's float32 output depends on its batch's padding in the last bits
        atol = 1e-6 if table == "embed_minilm" else 1e-9
        want = _stored_rows(paths, table, pids)
        rows = pl.concat([pl.from_arrow(g[i]) for g in got]).sort("pid").select(want.columns)
        assert rows["pid"].to_list() == pids, table
        for col in want.columns[1:]:
            a, b = rows[col].cast(pl.Float64).to_numpy(), want[col].cast(pl.Float64).to_numpy()
            assert np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a, b, rtol=0, atol=atol, equal_nan=True), \
                (table, col, a, b)


def test_images_measured_in_the_helper_process_equal_in_process_and_survive_its_death(run, caplog):
    """``image_process`` (``smpp serve``): the same rows as measuring in the serving process; a helper that
    died is replaced (logged), with the same rows."""
    import os
    import signal

    paths, params = run
    pids = pl.read_parquet(paths.table("split")).filter(pl.col("split") == "test")["pid"].head(3).to_list()
    records = stored_records(paths.smpd_dir, pids)
    here = Predictor(paths, params).features(records)[1]
    helped = Predictor(paths, params, image_process=True)
    try:
        np.testing.assert_array_equal(helped.features(records)[1], here)
        (old,) = helped.online._images._processes
        os.kill(old, signal.SIGKILL)
        time.sleep(0.5)
        np.testing.assert_array_equal(helped.features(records)[1], here)
        assert "image-statistics process died" in caplog.text
        np.testing.assert_array_equal(helped.features(records)[1], here)  # the new helper
        assert old not in helped.online._images._processes
        # a helper that dies on a request's images: they are measured here
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        from featurestore.image_stats import posts_image_stats
        from featurestore.new_posts import new_post_tables

        died = Future()
        died.set_exception(BrokenProcessPool("killed"))
        new = new_post_tables(records, paths.smpd_dir, helped.online.next_pid)
        assert helped.online._image_result(died, new).equals(posts_image_stats(*helped.online._image_args(new))[0])
    finally:
        helped.close()
    assert helped.online._images is None


def test_after_loading_a_call_fits_nothing_and_reads_no_stored_table(run, monkeypatch):
    paths, params = run
    predictor = Predictor(paths, params)
    pids = pl.read_parquet(paths.table("split")).filter(pl.col("split") == "val")["pid"].head(3).to_list()
    records = stored_records(paths.smpd_dir, pids)

    def refuse(*args, **kwargs):
        raise AssertionError("a fit while serving")

    for cls in (TfidfVectorizer, TruncatedSVD, Standardiser):
        for method in ("fit", "fit_transform"):
            if hasattr(cls, method):
                monkeypatch.setattr(cls, method, refuse)
    root = str(paths.root.resolve())

    def guarded(read):
        def read_outside_the_store(path, *args, **kwargs):
            assert not str(Path(path).resolve()).startswith(root), f"read {path} per call"
            return read(path, *args, **kwargs)
        return read_outside_the_store

    monkeypatch.setattr(pq, "read_table", guarded(pq.read_table))
    monkeypatch.setattr(pl, "read_parquet", guarded(pl.read_parquet))
    out = predictor.predict(records)
    assert out.height == 3 and out["pred"].is_finite().all()
