"""Errors people can read: an expected error (bad SMPD file, bad params, missing input, read-only
SQL, a refused run) prints one line naming the file/row/field and exits 2, with the traceback only
under -v; `-v` works before every subcommand; Ctrl-C exits 130 and leaves no half-written output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import cli
from pipelines.fingerprint import FileHasher
from pipelines.stage_io import PERSIST, resolve, stage_io
from featurestore.paths import Paths
from run_manifest import small_run, write_complete_manifest  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]


def _main(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err.strip()


def _one_line(err: str) -> str:
    """The error: stderr's last line (log lines and progress bars may come before it), no traceback."""
    assert "Traceback" not in err, err
    return err.splitlines()[-1]


def test_a_format_error_is_one_line_naming_file_row_and_field(tiny_smpd, tmp_path, capsys):
    f = tiny_smpd / "train_allmetadata_json" / "train_temporalspatial_information.json"
    recs = json.loads(f.read_text())
    recs[1]["Postdate"] = "yesterday"
    f.write_text(json.dumps(recs))
    argv = ["run", "--smpd-dir", str(tiny_smpd), "--workdir", str(tmp_path / "w")]
    rc, _, err = _main(capsys, *argv)
    line = _one_line(err)
    assert rc == 2 and line.startswith("smpp run: ")
    assert "train_temporalspatial_information.json row 1 field 'Postdate'" in line
    manifest = json.loads((tmp_path / "w/run.json").read_text())
    assert manifest["status"] == "failed" and manifest["failed_stage"] == "ingest"
    rc, _, err = _main(capsys, "-v", *argv)  # -v: the traceback too, same exit code
    assert rc == 2 and "Traceback" in err and err.splitlines()[-1] == line


@pytest.mark.parametrize("text, words", [
    ("features_txt:\n  svd_components: 4\n", "unknown params section(s) ['features_txt']"),
    ("train_stack:\n  learners: [lgbm]\n  learner_params: {xgbost: {}}\n", "learner_params names unknown learners"),
    ("split: [1, 2\n", "not valid YAML"),
    ("- a list\n", "params must be a mapping of sections"),
])
def test_bad_params_are_one_line_before_anything_runs(tiny_smpd, tmp_path, capsys, text, words):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    rc, _, err = _main(capsys, "run", "--smpd-dir", str(tiny_smpd), "--workdir", str(tmp_path / "w"), "--params", str(p))
    assert rc == 2 and words in _one_line(err)
    assert not (tmp_path / "w" / "data").exists()  # refused before anything ran


def test_a_bad_key_of_a_stage_section_is_one_line_when_the_stage_starts(tiny_smpd, tmp_path, capsys):
    p = tmp_path / "p.yaml"
    p.write_text("features_text:\n  svd_componentz: 4\n")
    rc, _, err = _main(capsys, "run", "--smpd-dir", str(tiny_smpd), "--workdir", str(tmp_path / "w"), "--params", str(p))
    assert rc == 2 and "params section 'features_text': unknown key(s) ['svd_componentz']" in _one_line(err)
    manifest = json.loads((tmp_path / "w/run.json").read_text())
    assert manifest["status"] == "failed" and manifest["failed_stage"] == "features_text"
    assert not (tmp_path / "w/data/features/text.parquet").exists()


def test_missing_inputs_are_one_line(tmp_path, capsys):
    rc, _, err = _main(capsys, "run", "--smpd-dir", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "w"))
    assert rc == 2 and "nowhere: no such directory" in _one_line(err)
    rc, _, err = _main(capsys, "run", "--smpd-dir", str(tmp_path), "--workdir", str(tmp_path / "w"),
                       "--params", str(tmp_path / "missing.yaml"))
    assert rc == 2 and "missing.yaml" in _one_line(err)


def test_read_only_sql_error_is_one_line(tmp_path, capsys):
    root = tmp_path / "w"
    (root / "data").mkdir(parents=True)
    write_complete_manifest(root)
    rc, _, err = _main(capsys, "sql", "--root", str(root), "SELECT 1")  # a complete manifest but no catalog
    assert rc == 2 and "catalog.duckdb does not exist" in _one_line(err)


@pytest.mark.parametrize("flag", ["-v", "--verbose"])
@pytest.mark.parametrize("argv, rc", [
    (["simulate", "--posts", "40", "--no-images", "--quiet", "--out", "{tmp}/sim"], 0),
    (["errors", "--root", "{tmp}/nowhere"], 2),
    (["predict", "--root", "{tmp}/nowhere", "--post", "{tmp}/p.json"], 2),
    (["similar", "1", "--root", "{tmp}/nowhere"], 2),
    (["sql", "--root", "{tmp}/nowhere", "SELECT 1"], 2),
    (["run", "--smpd-dir", "{tmp}/nowhere", "--workdir", "{tmp}/w"], 2),
])
def test_verbose_before_any_subcommand(tmp_path, capsys, flag, argv, rc):
    argv = [a.format(tmp=tmp_path) for a in argv]
    got, _, err = _main(capsys, flag, *argv)
    assert got == rc, err
    if rc:
        assert "Traceback" in err or argv[0] == "errors"  # -v: the traceback (errors exits with its own line)
        assert "KeyError" not in err


def test_verbose_after_the_subcommand(tmp_path, capsys):
    rc, _, err = _main(capsys, "run", "--smpd-dir", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "w"), "-v")
    assert rc == 2 and "Traceback" in err


# ---------------------------------------------------------------- Ctrl-C

def _read_manifest(work: Path) -> dict | None:
    try:
        return json.loads((work / "run.json").read_text())
    except (OSError, ValueError):
        return None


def test_ctrl_c_exits_130_and_leaves_only_whole_outputs_of_finished_stages(small_run, tmp_path):
    smpd, params, _ = small_run
    work = tmp_path / "w"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--smpd-dir", str(smpd), "--workdir",
                             str(work), "--params", str(params)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # interrupt once split finished
        m = _read_manifest(work)
        if m and m["stages"].get("split", {}).get("status") == "done":
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err
    m = _read_manifest(work)
    assert m["status"] == "interrupted" and m["failed_stage"] not in (None, "ingest", "split")
    # "done"/"pending": the signal landed between two stages (after one finished, before the next started)
    assert m["stages"][m["failed_stage"]]["status"] in ("interrupted", "done", "pending")
    assert "running" not in {r["status"] for r in m["stages"].values()}
    assert not list(work.rglob("*.tmp")) and not (work / "data/.stale").exists()
    assert not (work / "reports/submission.json").exists()
    paths, hasher = Paths(root=work, smpd=smpd), FileHasher()
    for name, rec in m["stages"].items():  # the workdir holds exactly the outputs of the finished stages
        for rel in set(stage_io(name, m["params"]).outputs) - PERSIST:
            p = resolve(rel, paths)
            if rec["status"] == "done":
                assert hasher.path(p) == rec["outputs"][rel], (name, rel)
            else:
                assert not p.exists(), (name, rec["status"], rel)
    for p in work.rglob("*.parquet"):
        pq.read_metadata(p)  # whole files only
    for p in work.rglob("*.json"):
        json.loads(p.read_text())
