"""Executor ``ray`` gives what executor ``local`` gives, on a real local Ray cluster (2 CPUs, no dashboard,
one session for the module): tasks and batches, stack fits (OOF, weights, refits), time-safe
neighbours, image statistics, sharded embedding extraction -- and an extraction whose actors are
killed mid-job still ends with every post exactly once, and resumes shard by shard."""

from __future__ import annotations

import os
import signal

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]'): Ray executor "
                                        "tests skipped")

from test_encoders import make_root, test_overrides, tiny_sentence_transformer

from featurestore.executor import LocalExecutor, use_executor
from featurestore.executor_ray import RayExecutor
from featurestore.image_stats import ImageStatsConfig, build_image_stats
from featurestore.retrieval import time_safe_neighbours
from models.encoders import create_encoder
from models.extraction import extract, merge_shards, shard_path
from models.gbdt import LightGBMRegressor, XGBoostRegressor
from models.mlp_head import MLPRegressorHead
from models.stacking import StackedEnsemble, run_fits
from models.train_stack import StackConfig, fit_interval, refit_on_all_labels
from sklearn.base import BaseEstimator, RegressorMixin

@pytest.fixture(scope="module")
def rex():
    """One local Ray session for the module. This module's functions travel by value, so a worker
    never imports it (nor the test helpers it imports: sentence-transformers and the rest)."""
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield RayExecutor()
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def both(run):
    """``run()`` under the local executor and under the module's Ray executor."""
    with use_executor(LocalExecutor()):
        local = run()
    with use_executor(RayExecutor()):
        remote = run()
    return local, remote


def offset(batch, *, base):
    return [base[0] + x for x in batch]


def test_tasks_and_batches_come_back_in_order(rex):
    """(Classes, mapped by Ray Data actors, are checked through image statistics and extraction below.)"""
    base = np.array([100])
    done = []
    assert rex.run_tasks(offset, [[3], [1], [2]], shared={"base": base}, on_result=done.append) == [[103], [101], [102]]
    assert sorted(done) == [0, 1, 2]
    assert rex.map_batches(offset, list(range(7)), 3, shared={"base": base}) == [[100, 101, 102], [103, 104, 105],
                                                                               [106]]
    assert rex.map_batches(offset, [], 3, shared={"base": base}) == []


def _stack_data(n=360, d=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X[:, 0] + 0.5 * np.sin(3 * X[:, 1]) + rng.normal(scale=0.3, size=n)
    return X, y, np.sort(rng.integers(0, 200, n)) * 3600.0


def test_stack_fits_equal_local(rex):
    X, y, postdate = _stack_data()
    learners = {"lgbm": LightGBMRegressor(n_estimators=40, learning_rate=0.2, num_leaves=7, min_data_in_leaf=10,
                                          early_stopping_rounds=10, num_threads=1),
                "xgboost": XGBoostRegressor(n_estimators=30, learning_rate=0.2, max_depth=3, early_stopping_rounds=10,
                                            nthread=1),
                # big enough for multi-threaded BLAS, whose sums depend on the thread count (a Ray worker
                # starts with one thread; tasks run with the driver's pools, or this fails)
                "mlp": MLPRegressorHead(hidden_layer_sizes=(64,), max_epochs=3, batch_size=256)}

    cfg = StackConfig(learner_params={"lgbm": {"n_estimators": 40, "learning_rate": 0.2, "num_leaves": 7,
                                               "min_data_in_leaf": 10, "early_stopping_rounds": 10,
                                               "num_threads": 1}}, quantiles=(0.1, 0.9))
    tr, va = np.arange(len(y)) < 300, (np.arange(len(y)) >= 300) & (np.arange(len(y)) < 330)

    def fit():
        ens = StackedEnsemble(learners, n_folds=3).fit(X[tr], y[tr], postdate[tr], X[va], y[va])
        before = ens.predict(X[330:])
        interval = fit_interval(X, y, postdate, tr, va, (), cfg)  # the quantile fits: tasks too
        bounds = interval.predict(X[330:])
        interval, report = refit_on_all_labels(ens, interval, X, y, tr, va, (), cfg)  # its refit_full on train + val
        return ens, before, ens.predict(X[330:]), bounds, interval.predict(X[330:]), report

    (a, a_pred, a_full, a_int, a_int_full, a_rep), (b, b_pred, b_full, b_int, b_int_full, b_rep) = both(fit)
    np.testing.assert_array_equal(a.oof_, b.oof_)
    assert a.weights_ == b.weights_ and a.intercept_ == b.intercept_ and a.refit_rows_ == b.refit_rows_
    np.testing.assert_array_equal(b_pred, a_pred)  # bit for bit: every fit ran with the local thread counts
    np.testing.assert_array_equal(b_full, a_full)
    assert a.refit_full_ == b.refit_full_ and a_rep == b_rep
    for x, z in zip(a_int + a_int_full, b_int + b_int_full):
        np.testing.assert_array_equal(z, x)


def _dp_data(n=2400, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[:, 0] = rng.integers(0, 5, n)  # a categorical code
    y = X[:, 1] + np.sin(2 * X[:, 2]) + 0.4 * X[:, 0] + rng.normal(scale=0.3, size=n)
    return X[400:], y[400:], X[:400], y[:400]


@pytest.mark.parametrize("cls, kw", [(LightGBMRegressor, {"num_threads": 1, "categorical_features": (0,),
                                                           "num_leaves": 15, "min_data_in_leaf": 20}),
                                      (XGBoostRegressor, {"nthread": 1, "max_depth": 4})])
def test_data_parallel_gbdt_learns_what_one_node_learns(rex, cls, kw):
    """Two Ray Train workers, each with half the rows, grow one model: early-stopped on the whole val set,
    about as accurate as the single-node fit and close to it row by row (not bit for bit: the bins and
    histogram sums come from the shards)."""
    X, y, X_val, y_val = _dp_data()
    common = {"n_estimators": 300, "learning_rate": 0.1, "early_stopping_rounds": 20, **kw}
    with use_executor(rex):
        one = cls(**common).fit(X, y, X_val, y_val)
        dp = cls(**common, data_parallel_workers=2).fit(X, y, X_val, y_val)
        fixed = cls(**common, data_parallel_workers=2).fit(X, y, num_boost_round=7)
    p_one, p_dp = one.predict(X_val), dp.predict(X_val)
    assert 10 < dp.best_iteration_ < 300  # early stopping ended it
    assert np.corrcoef(p_one, p_dp)[0, 1] > 0.99
    mse_one, mse_dp = np.mean((p_one - y_val) ** 2), np.mean((p_dp - y_val) ** 2)
    assert mse_dp < 1.1 * mse_one and mse_dp < 0.25 * np.var(y_val)
    assert fixed.best_iteration_ == 7


class PidLearner(RegressorMixin, BaseEstimator):
    """Fits nothing; remembers the process it was fitted in."""

    def __init__(self, data_parallel_workers=None):
        self.data_parallel_workers = data_parallel_workers

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round=None):
        self.pid_, self.best_iteration_ = os.getpid(), num_boost_round
        return self


def test_data_parallel_learners_fit_from_the_driver_the_rest_in_tasks(rex):
    """A data-parallel learner starts its own Ray Train workers, so its fits never run inside a task."""
    X, y = np.zeros((8, 2)), np.arange(8.0)
    tasks = [("refit_full", PidLearner(), 3, 8, False), ("refit_full", PidLearner(2), 4, 8, False),
             ("refit_full", PidLearner(), 5, 8, False)]
    done = []
    with use_executor(rex):
        out = run_fits(tasks, {"X": X, "y": y}, on_result=done.append)
    pids = [model.pid_ for (model, _), _ in out]
    assert [rounds for (_, rounds), _ in out] == [3, 4, 5]  # task order kept
    assert pids[1] == os.getpid() and pids[0] != os.getpid() and pids[2] != os.getpid()
    assert sorted(done) == [0, 1, 2]


def test_neighbour_blocks_equal_local(rex):
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((700, 24)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    postdate = rng.integers(0, 90, 700).astype(np.int64)  # many ties
    cand = rng.random(700) < 0.6

    def search():
        return (time_safe_neighbours(emb, postdate, 6, block=64, tile=128),
                time_safe_neighbours(emb, postdate, 4, block=100, candidates=cand, rows=~cand))

    local, remote = both(search)
    for (ids_a, sims_a), (ids_b, sims_b) in zip(local, remote):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(sims_a, sims_b)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray_store")
    return make_root(d / "root", n=60), {"st": tiny_sentence_transformer(d / "w"), "clip": "unused"}


def test_image_stats_equal_local(rex, store):
    paths, _ = store
    (paths.smpd_dir / "train/u3/104.jpg").write_bytes(b"not a jpeg")  # a corrupt file, counted the same
    cfg = ImageStatsConfig(workers=1, chunk_size=7, progress=False)
    (ta, sa), (tb, sb) = both(lambda: build_image_stats(paths, cfg))
    assert ta.equals(tb) and ta.num_rows == 60
    assert {k: v for k, v in sa.items() if k not in ("seconds", "images_per_s")} == \
        {k: v for k, v in sb.items() if k not in ("seconds", "images_per_s")}
    assert sa["missing"] == 2 and sa["corrupt"] == 1


def _kill_map_actors() -> int:
    """SIGKILL every live Ray Data map actor (what a lost node or an OOM kill does); returns how many."""
    from ray._private import state

    pids = [a["Pid"] for a in state.actors().values()
            if a["State"] == "ALIVE" and "MapWorker" in a["ActorClassName"] and a.get("Pid")]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def test_extraction_resumes_survives_killed_actors_and_equals_local(rex, store, tmp_path):
    paths, weights = store
    enc = create_encoder("minilm", **test_overrides("minilm", weights))
    inputs = enc.read_inputs(paths)
    local, remote = tmp_path / "local", tmp_path / "ray"
    extract(enc, paths, local, shard_size=6, progress=False, inputs=inputs)
    remote.mkdir()  # a Ray job that died after shards 0, 3 and 4 landed (and while writing shard 5)
    for f in ["manifest.json"] + [shard_path(local, s).name for s in (0, 3, 4)]:
        (remote / f).write_bytes((local / f).read_bytes())
    (remote / "shard-00005.parquet.tmp123").write_bytes(b"half a shard")
    killed = []

    def kill_once(s, n_shards):  # after the first new shard lands, kill every actor (mid-shard for the others)
        if not killed:
            killed.append(_kill_map_actors())

    with use_executor(RayExecutor(actors=1)):  # one actor: killed while it holds the next shards
        summary = extract(enc, paths, remote, shard_size=6, progress=False, inputs=inputs, on_shard=kill_once)
    assert killed and killed[0] >= 1
    assert summary["shards"] == 10 and summary["shards_reused"] == 3 and summary["rows_computed"] == 42
    files = sorted(remote.glob("shard-*.parquet"))
    pids = np.concatenate([pq.read_table(f, columns=["pid"])["pid"].to_numpy() for f in files])
    assert len(files) == 10 and np.array_equal(pids, inputs["pid"].to_numpy())  # every post once, in order
    assert not list(remote.glob("*.tmp*"))
    assert merge_shards(remote, inputs).equals(merge_shards(local, inputs))


@pytest.mark.slow
def test_every_stage_of_smpp_run_equals_local(rex, tmp_path):
    """The whole pipeline (every stage, MiniLM included) under ``--executor ray`` writes the tables and
    metrics ``--executor local`` writes, byte for byte (slow: two full runs; bench_ray does it at scale)."""
    import json

    from test_pipeline import FAST, _artefacts

    from featurestore.simulate import SimConfig, simulate_smpd
    from pipelines import cli

    smpd = tmp_path / "smpd"
    simulate_smpd(smpd, SimConfig(posts=1200, seed=5, image_size=48, workers=1, progress=False))
    minilm = {"weights": str(tiny_sentence_transformer(tmp_path / "st")), "options": {"dim": 16}, "progress": False,
              "shard_size": 256}
    stack = {**FAST["train_stack"], "learners": ["lgbm", "xgboost", "mlp", "ppcl"]}
    (tmp_path / "p.yaml").write_text(json.dumps({**FAST, "embed_minilm": minilm, "train_stack": stack}))
    for ex in ("local", "ray"):
        assert cli.main(["run", "--smpd-dir", str(smpd), "--workdir", str(tmp_path / ex), "--mode", "holdout",
                         "--params", str(tmp_path / "p.yaml"), "--executor", ex]) == 0
    local, remote = _artefacts(tmp_path / "local"), _artefacts(tmp_path / "ray")
    assert len(local) >= 12 and local.keys() == remote.keys()
    assert [k for k in local if local[k] != remote[k]] == []
