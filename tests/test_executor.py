"""The compute seam without Ray: the local executor's order and workers, the compute params, the CLI
switch, and a clear error (never a silent local run) when Ray is asked for but not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featurestore.config import ParamsError, config_from_dict, load_params
from featurestore.executor import (ComputeConfig, ExecutorUnavailable, LocalExecutor, current_executor,
                                   make_executor, use_executor)
from pipelines import cli
from pipelines.cli import compute_overrides

REPO = Path(__file__).resolve().parents[1]


def scaled(batch, *, factor):
    return [factor * x for x in batch]


class Counter:
    """Built once per worker; every call says which instance and process ran it."""

    def __init__(self, factor):
        self.factor, self.calls = factor, 0

    def __call__(self, batch):
        self.calls += 1
        return os.getpid(), id(self), self.calls, [self.factor * x for x in batch]


def test_local_map_batches_keeps_order_and_builds_a_class_once_per_worker():
    ex = LocalExecutor()
    assert ex.map_batches(scaled, list(range(10)), 3, shared={"factor": 2}) == [[0, 2, 4], [6, 8, 10], [12, 14, 16],
                                                                               [18]]
    one = ex.map_batches(Counter, np.arange(10), 4, shared={"factor": 3})
    assert [r[2] for r in one] == [1, 2, 3] and len({r[1] for r in one}) == 1  # one instance, three calls
    two = ex.map_batches(Counter, list(range(10)), 2, shared={"factor": 3}, workers=2)
    assert [x for r in two for x in r[3]] == [3 * x for x in range(10)]
    assert {r[0] for r in two} - {os.getpid()} and len({(r[0], r[1]) for r in two}) <= 2  # <= one per process
    done = []
    ex.map_batches(scaled, list(range(5)), 2, shared={"factor": 1}, on_result=done.append)
    assert done == [0, 1, 2]


def test_local_run_tasks_in_order_with_progress():
    done = []
    out = LocalExecutor().run_tasks(lambda t, *, a: a[t], [2, 0, 1], shared={"a": np.array([5, 6, 7])},
                                    on_result=done.append)
    assert out == [7, 5, 6] and done == [0, 1, 2]


def test_current_executor_is_local_outside_a_scope():
    assert current_executor().name == "local"
    marker = LocalExecutor()
    with use_executor(marker):
        assert current_executor() is marker
    assert current_executor() is not marker


def test_compute_params_are_checked():
    params = load_params(REPO / "params.yaml")
    assert config_from_dict(ComputeConfig, "compute", params["compute"]) == ComputeConfig()
    with pytest.raises(ParamsError, match="unknown key"):
        config_from_dict(ComputeConfig, "compute", {"executer": "ray"})
    with pytest.raises(ParamsError, match="must be one of"):
        config_from_dict(ComputeConfig, "compute", {"executor": "dask"})
    with pytest.raises(ParamsError, match="executor is 'local'"):
        config_from_dict(ComputeConfig, "compute", {"ray_address": "head:6379"})


def test_cli_options_override_the_compute_section(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr("featurestore.executor.make_executor", lambda cfg: None)  # runs without the ray extra
    assert compute_overrides({}, None, None) == {}
    assert compute_overrides({}, "ray", None) == {"compute": {"executor": "ray"}}
    assert compute_overrides({}, "ray", "h:1")["compute"] == {"executor": "ray", "ray_address": "h:1"}
    monkeypatch.setenv("RAY_ADDRESS", "env:2")
    assert compute_overrides({}, "ray", None)["compute"]["ray_address"] == "env:2"
    assert compute_overrides({}, None, None) == {}  # a local run ignores RAY_ADDRESS
    ray_params = {"compute": {"executor": "ray", "ray_address": "p:3"}}
    assert compute_overrides(ray_params, None, None)["compute"]["ray_address"] == "p:3"
    assert compute_overrides(ray_params, "local", None)["compute"] == {"executor": "local", "ray_address": None}
    with pytest.raises(ParamsError, match="needs --executor ray"):
        compute_overrides({}, None, "h:1")


def test_ray_without_the_extra_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    monkeypatch.delitem(sys.modules, "featurestore.executor_ray", raising=False)
    with pytest.raises(ExecutorUnavailable, match=r"smpp\[ray\]"):
        make_executor(ComputeConfig(executor="ray"))
    assert make_executor(ComputeConfig()).name == "local"
    code = cli.main(["run", "--smpd-dir", str(tmp_path), "--workdir", str(tmp_path / "w"), "--executor", "ray"])
    assert code == 2 and "needs the ray extra" in capsys.readouterr().err  # one line, before any work
    assert not (tmp_path / "w").exists()


def test_the_local_path_never_imports_ray():
    code = ("import sys, numpy as np\n"
            "from featurestore.retrieval import time_safe_neighbours\n"
            "from featurestore.image_stats import compute_rows\n"
            "from pipelines.runner import executor_scope\n"
            "with executor_scope({'compute': {'executor': 'local'}}):\n"
            "    e = np.eye(4, dtype=np.float32); time_safe_neighbours(e, np.arange(4), 2)\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_a_stage_run_alone_uses_the_params_executor(tmp_path, monkeypatch):
    """`dvc repro` runs each stage as `python -m pipelines.<stage>`: the stage sees the `compute` executor."""
    from pipelines.stage_cli import stage_main

    seen = []
    params = tmp_path / "params.yaml"
    params.write_text("compute:\n  executor: local\n  task_cpus: 1\n")
    stage_main("Stage demo: test.", lambda paths, p: seen.append(current_executor()),
               ["--root", str(tmp_path), "--params", str(params)])
    assert isinstance(seen[0], LocalExecutor)
    params.write_text("compute:\n  executor: spark\n")
    with pytest.raises(ParamsError, match="executor"):
        stage_main("Stage demo: test.", lambda paths, p: seen.append(current_executor()),
                   ["--root", str(tmp_path), "--params", str(params)])
    assert len(seen) == 1


def test_data_parallel_gbdt_needs_the_ray_executor():
    """No silent single-node fit when the params ask for data-parallel training."""
    from models.gbdt import LightGBMRegressor, XGBoostRegressor

    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40.0)
    for est in (LightGBMRegressor(data_parallel_workers=2), XGBoostRegressor(data_parallel_workers=2)):
        with pytest.raises(RuntimeError, match="compute.executor: ray"):
            est.fit(X, y)


def test_shard_rows_split_every_row_once_across_all_dates():
    from models.gbdt_data_parallel import shard_rows

    shards = shard_rows(11, 3)
    assert [s.tolist() for s in shards] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    with pytest.raises(ValueError, match="at least 2"):
        shard_rows(10, 1)
    with pytest.raises(ValueError, match="cannot be split"):
        shard_rows(2, 3)
