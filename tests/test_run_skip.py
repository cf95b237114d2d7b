"""`smpp run` into a workdir it ran before skips every stage whose params, code and inputs are
unchanged (like `dvc repro`), reruns exactly the stages a change reaches, and never leaves an old
output beside new ones, not even after a failed run."""

from __future__ import annotations

import json
import logging

import pyarrow.parquet as pq

from pipelines.stage_io import overlaps, stage_io
from run_manifest import copy_tree, manifest, ran, small_run, smpp_run  # noqa: F401 (fixture)

OUTPUTS = ("reports/submission.json", "reports/metrics/stack.json", "data/models/stack.joblib", "data/catalog.duckdb",
           "data/preds/stack.parquet", "data/features/text.parquet")


def _files(work):
    return {p.relative_to(work).as_posix(): p.read_bytes() for p in sorted(work.rglob("*"))
            if p.is_file() and p.name != "run.json" and not p.name.startswith(".")}


def _downstream(stage: str, stages: list[str], params: dict) -> set[str]:
    """``stage`` and every stage reading, directly or not, what it writes (dvc.yaml's graph)."""
    out = {stage}
    for s in stages:
        if s not in out and any(overlaps(i, o) for a in out for o in stage_io(a, params).outputs
                                for i in stage_io(s, params).inputs):
            out.add(s)
    return out


def test_unchanged_rerun_runs_nothing(small_run, tmp_path, caplog):
    smpd, params, base = small_run
    work = copy_tree(base, tmp_path / "w")
    before = _files(work)
    with caplog.at_level(logging.INFO, logger="pipelines.incremental"):
        assert smpp_run(smpd, work, params) == 0
    m = manifest(work)
    assert m["status"] == "complete" and ran(work) == set()
    assert {r["status"] for r in m["stages"].values()} == {"skipped"}
    assert sum("skipped (unchanged)" in r.getMessage() for r in caplog.records) == len(m["stages"])
    first = json.loads((base / "run.json").read_text())["stages"]
    for name, rec in m["stages"].items():  # a skipped stage keeps the cost of the run that computed it
        assert rec["computed_cost"] == first[name]["cost"] and "cost" not in rec
    assert _files(work) == before  # nothing rewritten, nothing left aside


def test_a_changed_param_reruns_its_stage_and_exactly_the_stages_downstream(small_run, tmp_path):
    smpd, params, base = small_run
    work = copy_tree(base, tmp_path / "w")
    changed = json.loads(params.read_text()) | {"features_text": {"svd_components": 6}}
    p2 = tmp_path / "p2.yaml"
    p2.write_text(json.dumps(changed))
    assert smpp_run(smpd, work, p2) == 0
    m = manifest(work)
    expected = _downstream("features_text", m["stage_order"], m["params"])
    assert expected == {"features_text", "embed_engineered", "features_sequence", "train_lgbm", "train_stack",
                        "evaluate", "catalog"}
    assert ran(work) == expected
    assert m["stages"]["features_text"]["reason"] == "params changed (features_text)"
    assert m["params"]["features_text"] == {"svd_components": 6}
    svd = [c for c in pq.read_schema(work / "data/features/text.parquet").names if "svd" in c]
    assert svd and len(svd) <= 2 * 6


def test_a_changed_input_file_reruns_from_ingest_and_only_where_inputs_changed(small_run, tmp_path):
    _, params, base = small_run
    smpd = copy_tree(base.parent / "smpd", tmp_path / "smpd")
    (tmp_path / "smpd.oracle.parquet").write_bytes((base.parent / "smpd.oracle.parquet").read_bytes())
    work = tmp_path / "w"
    assert smpp_run(smpd, work, params) == 0
    text = smpd / "train_allmetadata_json" / "train_text.json"
    recs = json.loads(text.read_text())
    recs[0]["Title"] = "a new title #sunset"
    text.write_text(json.dumps(recs))
    assert smpp_run(smpd, work, params) == 0
    m = manifest(work)
    assert m["stages"]["ingest"]["reason"] == "input changed (data/raw/smpd)"
    assert {"ingest", "features_text", "features_image_stats", "train_stack", "catalog"} <= ran(work)
    assert "split" not in ran(work)  # posts.parquet came out byte-identical: split and what reads only it skip
    for s in ran(work) - {"ingest"}:
        assert m["stages"][s]["reason"].startswith("input changed"), (s, m["stages"][s]["reason"])


def test_a_failed_rerun_leaves_no_old_output_beside_new_ones(small_run, tmp_path, capsys):
    _, params, base = small_run
    smpd = copy_tree(base.parent / "smpd", tmp_path / "smpd")
    work = tmp_path / "w"
    assert smpp_run(smpd, work, params) == 0
    assert all((work / o).exists() for o in OUTPUTS)
    text = smpd / "train_allmetadata_json" / "train_text.json"
    good = text.read_bytes()
    text.write_text('[{"Pid": "1", "Title": ')  # truncated JSON: ingest fails
    capsys.readouterr()
    assert smpp_run(smpd, work, params) == 2
    assert "train_text.json" in capsys.readouterr().err
    m = manifest(work)
    assert m["status"] == "failed" and m["failed_stage"] == "ingest" and "train_text.json" in m["error"]
    assert [o for o in OUTPUTS if (work / o).exists()] == []
    assert not (work / "data/.stale").exists() and not list(work.rglob("*.tmp"))
    text.write_bytes(good)
    assert smpp_run(smpd, work, params) == 0 and manifest(work)["status"] == "complete"
    assert all((work / o).exists() for o in OUTPUTS)
