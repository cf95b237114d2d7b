"""Smoke run of the whole pipeline on a tiny simulated set, its determinism, and dvc.yaml wiring."""

import json
from pathlib import Path

import orjson
import pytest
import yaml

from dvc_stages import all_stages, root_stages
from test_encoders import tiny_sentence_transformer

from featurestore.simulate import SimConfig, simulate_smpd
from pipelines import cli
from pipelines.runner import STAGES, stage_module

REPO = Path(__file__).resolve().parents[1]


# Every learner and stage runs, with small models: the smoke test checks wiring, not accuracy.
# One thread per library: under pytest -n 2 on 2 cores, OpenMP spin-waiting makes 2 threads 100x slower.
FAST = {"train_stack": {"n_folds": 2, "learner_params": {
            "lgbm": {"n_estimators": 80, "num_threads": 1}, "catboost": {"n_estimators": 80, "thread_count": 1},
            "xgboost": {"n_estimators": 80, "nthread": 1}, "mlp": {"max_epochs": 5}, "ppcl": {"max_epochs": 2, "num_threads": 1}}},
        "train_lgbm": {"n_estimators": 200, "num_threads": 1},
        "finetune_wrcr": {"proj_hidden": 16, "proj_dim": 8, "embed_dim": 6, "max_epochs": 2, "crossfit_folds": 0},
        "features_image_stats": {"workers": 1, "progress": False}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "smpd"
    simulate_smpd(d, SimConfig(posts=1500, seed=3, image_size=48, workers=1))
    minilm = {"weights": str(tiny_sentence_transformer(d.parent / "st")), "options": {"dim": 16}, "progress": False}
    (d.parent / "fast.yaml").write_text(json.dumps({**FAST, "embed_minilm": minilm}))  # JSON is YAML
    return d


def _test_pids(smpd: Path) -> set[int]:
    recs = orjson.loads((smpd / "test_allmetadata_json" / "test_category.json").read_bytes())
    return {int(r["Pid"]) for r in recs}


def test_smpp_run_writes_a_complete_submission(sim, tmp_path, capsys):
    work = tmp_path / "w"
    assert cli.main(["run", "--smpd-dir", str(sim), "--workdir", str(work), "--params", str(sim.parent / "fast.yaml")]) == 0
    assert "validation SRC" in capsys.readouterr().out
    sub = json.loads((work / "reports/submission.json").read_text())
    assert sub["version"] == "VERSION 1.0" and sub["external_data"] == {"used": "false", "details": ""}
    ids = [int(r["post_id"]) for r in sub["result"]]
    assert len(ids) == len(set(ids)) and set(ids) == _test_pids(sim)
    metrics = json.loads((work / "reports/evaluation.json").read_text())
    headline = {p.stem: json.loads(p.read_text()) for p in (work / "reports/metrics").glob("*.json")}
    assert headline["stack"]["val"] == {k: metrics["stack"]["val"][k] for k in ("src", "mae", "mse")}
    assert {"lgbm", "stack"} <= set(headline) and "n" not in headline["lgbm"]["val"]
    assert "oracle_ratio" in headline["stack"] and "oracle_ratio" not in headline["lgbm"]
    assert metrics["lgbm"]["val"]["n"] > 50 and metrics["lgbm"]["val"]["src"] > 0.2
    assert metrics["lgbm"]["test"]["n"] == 0  # submit mode: every labelled post trains or validates
    # the simulator's oracle sits beside the SMPD dir; the hidden test labels score the submission
    assert metrics["oracle"]["predict"]["model"]["n"] == len(ids)
    report = json.loads((work / "reports/ingest_report.json").read_text())
    assert report["posts_read"] == report["posts_kept"] == 1500
    assert (work / "data/catalog.duckdb").is_file()


def _artefacts(work: Path) -> dict[str, bytes]:
    files = sorted(p for p in (work / "data").rglob("*.parquet")) + sorted((work / "reports/metrics").glob("*.json")) + [
        work / "reports/evaluation.json", work / "reports/submission.json"]
    return {str(p.relative_to(work)): p.read_bytes() for p in files}


def test_same_seed_same_tables_and_metrics(sim, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for w in (a, b):
        cli.main(["run", "--smpd-dir", str(sim), "--workdir", str(w), "--mode", "holdout",
                  "--params", str(sim.parent / "fast.yaml")])
    fa, fb = _artefacts(a), _artefacts(b)
    assert fa.keys() == fb.keys() and len(fa) >= 12
    assert [k for k in fa if fa[k] != fb[k]] == []
    m = json.loads((a / "reports/evaluation.json").read_text())
    assert m["lgbm"]["test"]["n"] > 50  # holdout mode keeps a chronological test split


def test_dvc_yaml_lists_the_same_stages_and_params():
    dvc, root = all_stages(), root_stages()
    assert list(root)[1:] == [s for s in STAGES if s in root] and set(dvc) == {"simulate", *STAGES}
    for name in STAGES:
        stage = dvc[name]
        assert stage["cmd"] == f"python -m pipelines.{name}"
        assert tuple(stage.get("params", ())) == stage_module(name).PARAMS
        for dep in stage["deps"]:
            assert (REPO / dep).exists() or dep.startswith(("data/", "reports/")), dep
        assert f"pipelines/{name}.py" in stage["deps"]
