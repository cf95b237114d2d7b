"""The run manifest (run.json): what `smpp run` and `dvc repro` record, and how every reader uses it.

Readers (predict, similar, errors, sql) refuse a root with no manifest or an unfinished run with one
line and exit 2, and take the run's params and SMPD directory from it. `smpp run` refuses a workdir
holding another run unless --force, which removes only data/ and reports/. Writes are atomic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
import yaml
from dvc_stages import all_stages

from featurestore.atomic import atomic_write
from featurestore.config import load_params, merge_params
from featurestore.new_posts import stored_records
from pipelines import catalog as catalog_stage, cli, features_text
from pipelines.fingerprint import module_closure, smpd_fingerprint
from pipelines.manifest import RunRefused, check_workdir, open_run, require_complete, write_manifest
from pipelines.runner import SUBMIT_OVERRIDES, STAGES, stage_module
from pipelines.stage_io import PERSIST, stage_io
from run_manifest import copy_tree, manifest, small_run, smpp_run, write_complete_manifest  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- what a run records

def test_smpp_run_records_what_the_run_was(small_run):
    smpd, params_file, work = small_run
    m = manifest(work)
    assert m["status"] == "complete" and m["created_by"] == "smpp run" and m["mode"] == "submit"
    assert m["smpd_dir"] == str(smpd.resolve()) and Path(m["smpd_dir"]).is_absolute()
    want = load_params(params_file)
    assert m["params"]["split"] == SUBMIT_OVERRIDES["split"]  # params after the --mode overrides
    assert m["params"]["train_stack"] == merge_params(want, SUBMIT_OVERRIDES)["train_stack"]  # + refit_full
    assert m["inputs"]["hash"] == smpd_fingerprint(smpd)["hash"] and m["inputs"]["images"] > 500
    assert m["code"]["version"] and len(m["code"]["source_hash"]) == 32
    assert list(m["stages"]) == sorted(m["stage_order"]) and m["stage_order"][0] == "ingest"
    for name, rec in m["stages"].items():
        assert rec["status"] == "done" and rec["seconds"] >= 0 and rec["fingerprint"], name
        assert set(rec["outputs"]) == set(stage_io(name, m["params"]).outputs) - PERSIST
        assert all(rec["outputs"].values()), name


def test_smpd_fingerprint_sees_metadata_content_and_image_names_and_sizes(tmp_path, tiny_smpd):
    base = smpd_fingerprint(tiny_smpd)["hash"]
    copy = copy_tree(tiny_smpd, tmp_path / "copy")
    assert smpd_fingerprint(copy)["hash"] == base  # names, sizes, contents: not the location or mtimes
    img = next(p for p in copy.rglob("*.jpg"))
    os.utime(img, (1, 1))
    assert smpd_fingerprint(copy)["hash"] == base  # an image's mtime is not part of it
    img.write_bytes(img.read_bytes() + b"\0")
    assert smpd_fingerprint(copy)["hash"] != base  # its size is
    copy2 = copy_tree(tiny_smpd, tmp_path / "copy2")
    label = next(copy2.rglob("train_label.txt"))
    label.write_text(label.read_text().replace("7", "8", 1))  # same size, other content
    assert smpd_fingerprint(copy2)["hash"] != base


def test_stage_io_matches_dvc_yaml():
    dvc = all_stages()
    params = load_params(REPO / "params.yaml")
    for name in STAGES:
        st = dvc[name]
        deps = {d for d in st["deps"] if d.startswith(("data/", "reports/"))}
        outs = [o for k in ("outs", "metrics", "plots") for o in st.get(k, ())]
        names = {next(iter(o)) if isinstance(o, dict) else o for o in outs} - {"run.json"}
        persist = {next(iter(o)) for o in outs if isinstance(o, dict) and next(iter(o.values())).get("persist")}
        io = stage_io(name, params)
        assert set(io.inputs) == deps, name
        assert set(io.outputs) == names, name
        assert persist == PERSIST & set(io.outputs), name


def test_a_stage_code_hash_covers_what_it_imports_and_nothing_else():
    evaluate = module_closure("pipelines.evaluate")
    assert {"models.metrics", "models.submission", "pipelines.stage_cli", "featurestore.atomic"} <= set(evaluate)
    assert "featurestore.ingest" not in evaluate and "pipelines.runner" not in evaluate
    assert "featurestore.smpd_values" in module_closure("pipelines.ingest")


# ---------------------------------------------------------------- readers

def _post(smpd: Path, work: Path, tmp_path: Path) -> tuple[Path, int, float]:
    preds = pl.read_parquet(work / "data/preds/stack.parquet").filter(pl.col("split") == "predict").sort("pid")
    pid = int(preds["pid"][0])
    f = tmp_path / "post.json"
    f.write_text(json.dumps(stored_records(smpd, [pid], split="test")[0]))
    return f, pid, float(preds["pred"][0])


def test_predict_takes_params_and_smpd_dir_from_the_manifest(small_run, tmp_path, capsys):
    smpd, _, work = small_run
    post, pid, want = _post(smpd, work, tmp_path)
    out = tmp_path / "p.csv"
    assert cli.main(["predict", "--root", str(work), "--post", str(post), "--out", str(out)]) == 0
    row = pl.read_csv(out).row(0, named=True)
    assert row["pid"] == pid and row["pred"] == pytest.approx(want, abs=1e-9)  # the run's own prediction
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps({"features_text": {"svd_components": 4}}))
    capsys.readouterr()
    assert cli.main(["predict", "--root", str(work), "--post", str(post), "--params", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not the params of the run" in err and "features_text" in err and len(err.splitlines()) == 1


def _reader_commands(root: Path, tmp_path: Path) -> dict[str, list[str]]:
    post = tmp_path / "post.json"
    post.write_text(json.dumps({"Uid": "1@N1", "Postdate": "1455000000"}))
    return {"predict": ["predict", "--root", str(root), "--post", str(post)],
            "similar": ["similar", "1", "--root", str(root)],
            "errors": ["errors", "--root", str(root), "--html", str(tmp_path / "e.html")],
            "sql": ["sql", "--root", str(root), "SELECT 1"]}


@pytest.mark.parametrize("reader", ["predict", "similar", "errors", "sql"])
def test_readers_refuse_a_root_without_a_manifest(tmp_path, capsys, reader):
    root = tmp_path / "w"
    (root / "data").mkdir(parents=True)
    assert cli.main(_reader_commands(root, tmp_path)[reader]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no run manifest" in err and "dvc repro" in err and "smpp run" in err


@pytest.mark.parametrize("status, words", [("running", "has not finished"), ("failed", "failed at stage train_stack"),
                                           ("interrupted", "interrupted at stage train_stack"),
                                           ("incomplete", "is incomplete")])
@pytest.mark.parametrize("reader", ["predict", "similar", "errors", "sql"])
def test_readers_refuse_an_unfinished_run(tmp_path, capsys, reader, status, words):
    root = tmp_path / "w"
    m = write_complete_manifest(root, smpd_dir=tmp_path)
    m.update(status=status, failed_stage="train_stack", error="boom")
    write_manifest(root, m)
    assert cli.main(_reader_commands(root, tmp_path)[reader]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def test_open_run_gives_the_recorded_smpd_dir_unless_overridden(tmp_path):
    root = tmp_path / "w"
    write_complete_manifest(root, {"split": {"seed": 1}}, smpd_dir=tmp_path / "smpd")
    run = open_run(root)
    assert run.params == {"split": {"seed": 1}} and run.smpd_dir == (tmp_path / "smpd").resolve()
    assert open_run(root, smpd_dir=tmp_path / "moved").smpd_dir == tmp_path / "moved"
    with pytest.raises(RunRefused, match="does not exist: pass --smpd-dir"):
        open_run(root, need_smpd=True)


# ---------------------------------------------------------------- DVC

def test_dvc_catalog_stage_records_the_run_and_a_lone_stage_marks_it_incomplete(small_run, tmp_path):
    smpd, _, base = small_run
    work = copy_tree(base, tmp_path / "w")
    (work / "run.json").unlink()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(manifest(base)["params"]))
    args = ["--root", str(work), "--params", str(params), "--smpd-dir", str(smpd)]
    catalog_stage.main(args)
    m = require_complete(work)
    assert m["created_by"] == "dvc repro" and m["params"] == load_params(params)
    assert m["inputs"]["hash"] == manifest(base)["inputs"]["hash"]
    assert {r["status"] for r in m["stages"].values()} == {"done"}
    features_text.main(args)  # `python -m pipelines.features_text` on its own
    with pytest.raises(RunRefused, match="stage features_text ran on its own"):
        require_complete(work)
    catalog_stage.main(args)
    assert require_complete(work)["status"] == "complete"


def test_dvc_yaml_catalog_runs_last_and_writes_the_manifest():
    st = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["catalog"]
    assert {"reports/metrics", "params.yaml", "data/raw/smpd", "pipelines/manifest.py"} <= set(st["deps"])
    assert {"run.json": {"cache": False}} in st["outs"]
    assert stage_module("catalog").PARAMS == ()


# ---------------------------------------------------------------- another run in the workdir

def test_a_workdir_of_another_run_is_refused_without_force(small_run, tmp_path, capsys):
    smpd, params, base = small_run
    work = tmp_path / "w"
    (work / "data/tables").mkdir(parents=True)
    (work / "reports").mkdir()
    (work / "reports/submission.json").write_text("{}")
    (work / "notes.txt").write_text("mine")
    assert smpp_run(smpd, work, params) == 2  # outputs with no manifest
    err = capsys.readouterr().err
    assert "no run manifest" in err and "--force" in err and (work / "reports/submission.json").exists()
    other = copy_tree(smpd, tmp_path / "other_smpd")
    with pytest.raises(RunRefused, match=f"holds a run on {smpd.resolve()}, not on {other.resolve()}"):
        check_workdir(base, other, force=False)
    assert check_workdir(base, smpd, force=False)["status"] == "complete"  # same data set: reused
    assert smpp_run(smpd, work, params, "--force") == 0
    assert (work / "notes.txt").read_text() == "mine" and manifest(work)["status"] == "complete"
    assert {s["status"] for s in manifest(work)["stages"].values()} == {"done"}


def test_a_run_still_writing_the_workdir_is_refused_even_with_force(small_run, tmp_path):
    smpd, _, base = small_run
    work = copy_tree(base, tmp_path / "w")
    m = manifest(work) | {"status": "running", "pid": os.getppid()}  # a live process, not this one
    write_manifest(work, m)
    with pytest.raises(RunRefused, match="is writing"):
        check_workdir(work, smpd, force=True)


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "d" / "x.json"
    with atomic_write(target) as tmp:
        tmp.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["x.json"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and not list(tmp_path.rglob("*.tmp"))


def test_force_never_deletes_an_smpd_dir_inside_the_outputs(tmp_path):
    work = tmp_path / "w"
    smpd = work / "data/raw/smpd"
    smpd.mkdir(parents=True)
    (smpd / "train_text.json").write_text("[]")
    with pytest.raises(RunRefused, match="would delete the SMPD directory"):
        check_workdir(work, smpd, force=True)
    assert (smpd / "train_text.json").exists()
