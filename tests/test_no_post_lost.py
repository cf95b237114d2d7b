"""Every test-file post is accounted for in the submission, and a train-only directory is handled.

Reject mode: a test post that ingest rejects has no features, yet it gets a submission entry
with the documented fallback score and is listed in reports/submission_report.json; only a row
whose Pid does not parse cannot be submitted, and it is reported by its row number. A directory
without test files runs in holdout mode (empty submission, with a note) and stops before any
feature or model work in submit mode.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from featurestore.config import merge_params
from featurestore.paths import Paths
from featurestore.simulate import SimConfig, simulate_smpd
from ingest_helpers import ingest, make, set_value
from models.submission import SubmissionConfig, account_test_rows, build_submission, check_submission
from pipelines import cli
from pipelines.runner import SUBMIT_OVERRIDES, run_stages

# The smallest stack that runs every stage: the test is about accounting, not accuracy.
FAST = {"ingest": {"on_bad_row": "reject"},
        "train_stack": {"learners": ["lgbm"], "n_folds": 2,
                        "learner_params": {"lgbm": {"n_estimators": 30, "num_threads": 1}}},
        "train_lgbm": {"n_estimators": 30, "num_threads": 1},
        "features_image_stats": {"progress": False, "workers": 1, "faces": False}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lost") / "smpd"
    simulate_smpd(d, SimConfig(posts=400, seed=5, image_size=32, workers=1, progress=False))
    (d.parent / "fast.yaml").write_text(json.dumps(FAST))  # JSON is YAML
    return d


def _copy(sim: Path, tmp_path: Path) -> Path:
    """A copy of the simulated dir (its oracle beside it) that a test may corrupt."""
    out = tmp_path / "smpd"
    shutil.copytree(sim, out)
    shutil.copy(sim.with_name(sim.name + ".oracle.parquet"), out.with_name(out.name + ".oracle.parquet"))
    return out


def _records(smpd: Path, name: str) -> list[dict]:
    return json.loads(next(smpd.rglob(name)).read_text())


def _edit(smpd: Path, name: str, row: int, key: str, value) -> None:
    path = next(smpd.rglob(name))
    data = json.loads(path.read_text())
    if isinstance(data, list):
        data[row][key] = value
    else:  # the columnar user file
        data[key][str(row)] = value
    path.write_text(json.dumps(data))


def _run(sim: Path, smpd: Path, work: Path, mode: str) -> int:
    return cli.main(["run", "--smpd-dir", str(smpd), "--workdir", str(work), "--mode", mode,
                     "--params", str(sim.parent / "fast.yaml")])


def test_rejected_test_posts_are_submitted_with_the_fallback_and_reported(sim, tmp_path):
    smpd = _copy(sim, tmp_path)
    test = _records(smpd, "test_category.json")
    train_users = Counter(r["Uid"] for r in _records(smpd, "train_category.json"))
    known = max(range(len(test)), key=lambda i: train_users[test[i]["Uid"]])  # a user with many train posts
    unknown = next(i for i, r in enumerate(test) if r["Uid"] not in train_users and i != known)
    no_pid = next(i for i in range(len(test)) if i not in (known, unknown))
    _edit(smpd, "test_temporalspatial_information.json", known, "Postdate", "yesterday")
    _edit(smpd, "test_temporalspatial_information.json", unknown, "Postdate", "yesterday")
    _edit(smpd, "test_category.json", no_pid, "Pid", "p-17")  # the row's Pid itself does not parse
    work = tmp_path / "w"
    assert _run(sim, smpd, work, "submit") == 0

    sub = json.loads((work / "reports/submission.json").read_text())
    ids = [int(r["post_id"]) for r in sub["result"]]
    scores = {int(r["post_id"]): r["popularity_score"] for r in sub["result"]}
    parsable = {int(r["Pid"]) for i, r in enumerate(test) if i != no_pid}
    assert len(ids) == len(set(ids)) and set(ids) == parsable  # the two rejected posts included

    rep = json.loads((work / "reports/submission_report.json").read_text())
    assert (rep["test_rows_read"], rep["submitted"], rep["scored_by_model"]) == (len(test), len(test) - 1, len(test) - 3)
    assert (rep["scored_by_fallback"], rep["not_submittable"], rep["duplicate_rows"]) == (2, 1, 0)
    fb = {r["pid"]: r for r in rep["posts"]["fallback"]}
    assert set(fb) == {int(test[known]["Pid"]), int(test[unknown]["Pid"])}

    # the known user's fallback is the mean of that user's train labels; the unknown user's the train median
    preds = pl.read_parquet(Paths(root=work).table("predictions_stack"))
    posts = pl.read_parquet(Paths(root=work).table("posts"))
    train = preds.filter(pl.col("split") == "train").join(posts.select("pid", "uid"), on="pid")
    k, u = fb[int(test[known]["Pid"])], fb[int(test[unknown]["Pid"])]
    user_labels = train.filter(pl.col("uid") == test[known]["Uid"])["label"].to_numpy()
    assert k["fallback"] == "user_train_mean" and k["n_labels"] == len(user_labels) > 0
    assert scores[k["pid"]] == pytest.approx(user_labels.mean(), abs=1e-4)
    assert u["fallback"] == "train_median"
    assert scores[u["pid"]] == pytest.approx(np.median(train["label"].to_numpy()), abs=1e-4)
    assert k["row"] == known and k["field"] == "Postdate" and k["reason"] == "not an integer"
    assert [(r["row"], r["pid"]) for r in rep["posts"]["unsubmittable"]] == [(no_pid, None)]


def test_train_only_dir_runs_in_holdout_mode_with_an_empty_submission(sim, tmp_path):
    smpd = _copy(sim, tmp_path)
    for f in [f for f in smpd.rglob("test_*") if f.is_file()]:
        f.unlink()
    work = tmp_path / "w"
    assert _run(sim, smpd, work, "holdout") == 0
    assert json.loads((work / "reports/submission.json").read_text())["result"] == []
    rep = json.loads((work / "reports/submission_report.json").read_text())
    assert rep == {"test_files": False, "submitted": 0, "note": f"no test files in {smpd}: the submission has no posts"}
    assert json.loads((work / "reports/evaluation.json").read_text())["stack"]["test"]["n"] > 10


def test_train_only_dir_in_submit_mode_stops_before_features_and_training(sim, tmp_path):
    smpd = _copy(sim, tmp_path)
    for f in [f for f in smpd.rglob("test_*") if f.is_file()]:
        f.unlink()
    paths = Paths(root=tmp_path / "w", smpd=smpd)
    params = merge_params(FAST, SUBMIT_OVERRIDES)
    with pytest.raises(ValueError, match=r"no test posts in .*smpd .*nothing to submit; use `smpp run --mode holdout`"):
        run_stages(paths, params)
    assert not (paths.root / "data/features").exists() and not paths.stack_model.exists()


# --------------------------------------------------------------------------------------------
# the parts, on tiny hand-written data
# --------------------------------------------------------------------------------------------

def test_ingest_records_the_pid_of_every_rejected_row(tmp_path):
    root = make(tmp_path)
    set_value(root, "temporal", 0, "Postdate", "soon", split="test")
    set_value(root, "category", 1, "Pid", "x96454", split="test")
    set_value(root, "category", 1, "Uid", 5, split="test")
    _, report = ingest(root, on_bad_row="reject")
    rows = report["splits"]["test"]["rejected_rows"]
    assert [(r["row"], r["pid"], r["uid"], r["field"]) for r in rows] == [(0, 50731, "8770@N36", "Postdate"),
                                                                           (1, None, None, "Pid")]
    assert report["splits"]["train"]["rejected_rows"] == []


def test_check_submission_names_the_missing_pids():
    cfg = SubmissionConfig()
    sub = build_submission(np.array([1, 2]), np.array([5.0, 6.0]), cfg)
    with pytest.raises(ValueError, match=r"missing Pids \[3\]"):
        check_submission(sub, {1, 2, 3}, cfg)


def test_every_test_row_must_be_accounted_for():
    account_test_rows(5, 3, {"fallback": [{}], "duplicate": [], "unsubmittable": [{}]})
    with pytest.raises(ValueError, match="5 rows read but 4 accounted for"):
        account_test_rows(5, 3, {"fallback": [{}], "duplicate": [], "unsubmittable": []})
