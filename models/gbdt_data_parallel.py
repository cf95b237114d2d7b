"""Data-parallel LightGBM and XGBoost on Ray Train: one boosting run over row shards held by N workers.

``LightGBMRegressor`` / ``XGBoostRegressor`` with ``data_parallel_workers=N`` (N >= 2) fit through
``train_booster``:

- the training rows are cut into N interleaved shards (row i goes to worker i mod N, so every shard
  spans the whole time range), each put in the Ray object store once; worker r reads shard r only;
- the workers grow one model together: LightGBM's socket network with ``tree_learner=data``
  (bin bounds and histograms reduced over the workers), XGBoost's rabit collective (quantile
  sketches and histograms all-reduced); every worker ends with the same booster;
- every worker scores the whole validation set, so early stopping is one decision everywhere;
- rank 0 writes the booster's text to a Ray Train checkpoint, which comes back to the caller.

It needs the Ray executor (``compute.executor: ray``; a local executor raises, never a silent
single-node fit). Checkpoints go to ``compute.train_storage`` (a path every node can write: a
shared filesystem or an object-store URI); by default a temporary directory on the driver's node,
which only a cluster on one machine can use.

The booster is not the single-node one bit for bit (bins are found from the shards, histogram sums
run in another order) but is deterministic for a fixed N and seed; BENCHMARKS.md ("Ray Train") gives
its accuracy and time against single-node training. ``ray`` is imported here only, when used.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from featurestore.executor import current_executor

FRAMEWORKS = ("lightgbm", "xgboost")
_MODEL, _META = "model.txt", "meta.json"


def shard_rows(n: int, workers: int) -> list[np.ndarray]:
    """Row indices of each of ``workers`` shards: row i in shard i mod ``workers`` (each spans all dates)."""
    if workers < 2:
        raise ValueError(f"data-parallel training needs at least 2 workers, got {workers}")
    if n < workers:
        raise ValueError(f"{n} training rows cannot be split over {workers} workers")
    return [np.arange(r, n, workers) for r in range(workers)]


def train_booster(framework: str, params: dict, X: np.ndarray, y: np.ndarray, *, X_val=None, y_val=None,
                  weight: np.ndarray | None = None, num_boost_round: int, early_stopping_rounds: int | None,
                  workers: int, categorical: tuple[int, ...] = (),
                  feature_types: list[str] | None = None) -> tuple[str, int]:
    """(the booster's text, its best iteration) of ``framework`` trained data-parallel on ``workers`` workers.

    ``params`` are the library's training parameters (threads per worker included); early stopping
    on (X_val, y_val) when both are given and ``early_stopping_rounds`` is set. ``categorical``: LightGBM's
    categorical columns; ``feature_types``: XGBoost's ("c"/"q" per column, native categorical splits).
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    executor = current_executor()
    if executor.name != "ray":
        raise RuntimeError("data_parallel_workers needs the Ray executor: set compute.executor: ray "
                           "(or smpp run --executor ray); the local executor trains on one node only")
    executor.connect()
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig

    threads = int(params.get("num_threads" if framework == "lightgbm" else "nthread", 1))
    shards = [ray.put((X[rows], y[rows], None if weight is None else weight[rows]))
              for rows in shard_rows(len(y), workers)]
    val = ray.put((X_val, y_val)) if X_val is not None and early_stopping_rounds else None
    config = {"framework": framework, "params": params, "shards": shards, "val": val,
              "rounds": int(num_boost_round), "early": early_stopping_rounds, "categorical": list(categorical),
              "feature_types": feature_types}
    storage = getattr(executor, "train_storage", None) or tempfile.mkdtemp(prefix="smpp_ray_train_")
    run = RunConfig(storage_path=storage, checkpoint_config=CheckpointConfig(num_to_keep=1))
    scaling = ScalingConfig(num_workers=workers, resources_per_worker={"CPU": max(1, threads)})
    if framework == "lightgbm":
        from ray.train.lightgbm import LightGBMTrainer as Trainer
    else:
        from ray.train.xgboost import XGBoostTrainer as Trainer
    result = Trainer(_train_worker, train_loop_config=config, scaling_config=scaling, run_config=run).fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train {framework} run ended without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as d:
        meta = json.loads((Path(d) / _META).read_text())
        return (Path(d) / _MODEL).read_text(), int(meta["best_iteration"])


def _train_worker(config: dict) -> None:
    """One Ray Train worker: its shard, the whole validation set, the framework's distributed fit."""
    import ray
    import ray.train

    ctx = ray.train.get_context()
    X, y, w = ray.get(config["shards"][ctx.get_world_rank()])
    X_val, y_val = ray.get(config["val"]) if config["val"] is not None else (None, None)
    fit = _fit_lightgbm if config["framework"] == "lightgbm" else _fit_xgboost
    text, best = fit(config, X, y, w, X_val, y_val)
    if ctx.get_world_rank() != 0:  # every worker holds the same booster; rank 0 returns it
        ray.train.report({"best_iteration": best})
        return
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / _MODEL).write_text(text)
        (Path(d) / _META).write_text(json.dumps({"best_iteration": best}))
        ray.train.report({"best_iteration": best}, checkpoint=ray.train.Checkpoint.from_directory(d))


def _fit_lightgbm(config: dict, X, y, w, X_val, y_val) -> tuple[str, int]:
    import lightgbm as lgb
    import ray.train.lightgbm

    params = {**config["params"], **ray.train.lightgbm.get_network_params(), "tree_learner": "data",
              "pre_partition": True}
    cats = config["categorical"]
    train = lgb.Dataset(X, y, weight=w, categorical_feature=cats, free_raw_data=True)
    valid, callbacks = [], []
    if X_val is not None:
        valid = [lgb.Dataset(X_val, y_val, reference=train, categorical_feature=cats)]
        callbacks.append(lgb.early_stopping(config["early"], verbose=False))
    booster = lgb.train(params, train, num_boost_round=config["rounds"], valid_sets=valid, callbacks=callbacks)
    best = int(booster.best_iteration or booster.current_iteration())
    return booster.model_to_string(), best


def _fit_xgboost(config: dict, X, y, w, X_val, y_val) -> tuple[str, int]:
    import xgboost as xgb

    kw = {"feature_types": config["feature_types"], "enable_categorical": True} if config["feature_types"] else {}
    dtrain = xgb.DMatrix(X, label=y, weight=w, missing=np.nan, **kw)
    evals = [(xgb.DMatrix(X_val, label=y_val, missing=np.nan, **kw), "val")] if X_val is not None else []
    booster = xgb.train(config["params"], dtrain, num_boost_round=config["rounds"], evals=evals,
                        early_stopping_rounds=config["early"] if evals else None, verbose_eval=False)
    best = int(booster.best_iteration + 1 if evals else booster.num_boosted_rounds())
    return booster.save_raw("json").decode(), best
