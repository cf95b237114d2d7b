"""`smpp predict`: a stored test post reproduces the pipeline's prediction; new posts get an interval."""

import json

import polars as pl
import pytest

from test_encoders import tiny_sentence_transformer

from featurestore.new_posts import stored_records
from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import cli
from featurestore.paths import Paths
from pipelines.predict import predict_posts

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
