"""`smpp predict` input: bad files and records are named errors before any work; every prediction
says whether the image was found and carries warnings (image_missing, unknown_user,
before_training_period, after_stored_period_by_<N>d)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from featurestore.new_posts import stored_records
from featurestore.paths import Paths
from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import cli
from pipelines.post_input import PostInputError, load_posts, validate_posts
from pipelines.predict import predict_posts

FAST = {"train_stack": {"learners": ["lgbm"], "n_folds": 2,
                        "learner_params": {"lgbm": {"n_estimators": 30, "num_threads": 1}}},
        "train_lgbm": {"n_estimators": 30, "num_threads": 1},
        "features_image_stats": {"progress": False, "workers": 1, "faces": False}}
DAY = 86400


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_input")
    smpd = root / "smpd"
    simulate_smpd(smpd, SimConfig(posts=400, seed=7, image_size=32, workers=1, progress=False))
    (root / "fast.yaml").write_text(json.dumps(FAST))  # JSON is YAML
    cli.main(["run", "--smpd-dir", str(smpd), "--workdir", str(root / "w"), "--mode", "holdout",
              "--params", str(root / "fast.yaml")])
    return Paths(root=root / "w", smpd=smpd)


def _post(**kw) -> dict:
    return {"Uid": "999999@N99", "Postdate": "1455000000", "Title": "sunset #beach", "Alltags": "sunset beach",
            "Mediatype": "photo", "Category": "Travel&Active&Sports", "Subcategory": "Beach", "Concept": "sunset",
            "photo_count": 120, "ispro": 0, "timezone_offset": "+01:00"} | kw


def test_an_empty_array_is_no_posts_given(tmp_path):
    f = tmp_path / "posts.json"
    f.write_text("[]")
    with pytest.raises(PostInputError, match=r"posts\.json: no posts given"):
        load_posts(f)
    with pytest.raises(PostInputError, match="^no posts given$"):
        predict_posts(Paths(root=tmp_path / "no-run"), [], {})  # before looking for a model


def test_malformed_json_names_the_file_line_and_column(tmp_path):
    f = tmp_path / "posts.json"
    f.write_text('[{"Uid": "1@N1",\n  "Postdate" 1455000000}]')
    with pytest.raises(PostInputError, match=r"posts\.json: line 2 column 14: invalid JSON: Expecting ':' delimiter"):
        load_posts(f)


def test_wrong_types_name_the_post_and_the_field(tmp_path):
    posts = [_post(), _post(Uid=5), _post(Postdate="yesterday", Title=3)]
    with pytest.raises(PostInputError) as e:
        predict_posts(Paths(root=tmp_path / "no-run"), posts, {})
    assert str(e.value) == ("post 1: field 'Uid': expected a Uid '<digits>@N<digits>', got 5; "
                            "post 2: field 'Postdate': expected epoch seconds (int), got 'yesterday'; "
                            "post 2: field 'Title': expected a string, got 3")


@pytest.mark.parametrize("post,message", [
    ({"Postdate": "1455000000"}, "post 0: field 'Uid' is required"),
    (_post(Titel="x"), "post 0: unknown field 'Titel'"),
    (_post(Postdate=1455000000000), r"post 0: field 'Postdate': expected epoch seconds \(int\), got 1455000000000 "
                                    r"\(postdate looks like milliseconds"),
    (_post(photo_firstdate="soon"), "post 0: field 'photo_firstdate': expected epoch seconds or 'YYYY-MM-DD HH:MM:SS'"),
    ([], "^no posts given$"),
    ([3], "post 0: expected a JSON object with SMPD fields, got int"),
    ([_post(Pid=5), _post(Pid="5")], "post 1: field 'Pid': '5' is also the Pid of post 0"),
])
def test_other_bad_records(post, message):
    with pytest.raises(PostInputError, match=message):
        validate_posts(post if isinstance(post, list) else [post])


def test_the_2019_timezone_field_name_is_accepted():
    assert validate_posts([_post(timezone_timezone_id="9")])[0]["timezone_id"] == "9"


def test_image_found_and_warnings(run):
    paths = run
    posts = pl.read_parquet(paths.table("posts"))
    images = pl.read_parquet(paths.table("images")).join(posts, on="pid")
    split = pl.read_parquet(paths.table("split"))
    first_train = split.filter(pl.col("split") == "train")["postdate"].min()
    stored = images.filter((pl.col("split") == "test") & pl.col("exists")).row(0, named=True)
    replay = stored_records(paths.smpd_dir, [stored["pid"]], split="test")[0]
    late = _post(Uid=stored["uid"], Postdate=posts["postdate"].max() + 10 * DAY + 3600, image=stored["path"])
    early = _post(Postdate=first_train - 400 * DAY, image="nowhere.jpg")
    got = predict_posts(paths, [replay, early, late], {})
    assert got.columns == ["pid", "pred", "interval_lo", "interval_hi", "image_found", "warnings"]
    assert got["image_found"].to_list() == [True, False, True]
    assert got["warnings"].to_list() == ["", "image_missing;unknown_user;before_training_period",
                                         "after_stored_period_by_10d"]
    assert got["pid"][0] == stored["pid"]
