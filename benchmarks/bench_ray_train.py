"""Ray Train data-parallel LightGBM / XGBoost against single-node training, on the stack's own matrix.

    python -m benchmarks.bench_ray_train --root RUN [--workers 2] [--learners lgbm,xgboost] [--out FILE.md]

RUN is a finished holdout run: its model matrix (``load_inputs``, the columns the stack reads), its
train/val/test rows and its ``train_stack.learner_params``. Each learner is fitted on the train rows
and early-stopped on val, as the stack's refit is, two ways on the same cores:

- ``one node``: the usual fit in this process, ``cores`` threads;
- ``Ray Train``: ``--workers`` workers on a Ray cluster of as many nodes started on this machine
  (``ray.cluster_utils.Cluster``, the cores split between them), each worker holding 1/N of the train
  rows and cores/N threads (``data_parallel_workers``, ``models.gbdt_data_parallel``).

Reports fit wall seconds (Ray Train's include starting its workers and shipping the shards; the
start-up column is a one-tree Ray Train fit on 200 rows, i.e. that fixed cost alone), trees kept, and
val/test SRC and MAE. Prints (and with ``--out`` writes) markdown and a JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks.bench_peer_autogluon import run_stack_config, score, split_masks
from benchmarks.machine import cpu_model
from featurestore.executor import use_executor
from featurestore.paths import Paths
from models.gbdt import LightGBMRegressor, XGBoostRegressor
from models.matrix import to_matrix
from models.train_gbdt import CATEGORICAL_SUFFIX
from pipelines.model_inputs import load_inputs

LEARNERS = {"lgbm": (LightGBMRegressor, "num_threads"), "xgboost": (XGBoostRegressor, "nthread")}


def load_matrix(root: Path) -> tuple[dict, tuple[int, ...], dict]:
    """({split: (X, y)}, categorical column indices, train_stack.learner_params) of the run under ``root``."""
    cfg = run_stack_config(root)
    frame, names, _, _ = load_inputs(Paths(root=root), cfg.all_groups)
    X, y, masks = to_matrix(frame, names), frame["label"].to_numpy(), split_masks(frame)
    cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
    return {s: (X[m], y[m]) for s, m in masks.items()}, cats, cfg.learner_params


def fit_scored(est, data: dict) -> dict:
    """Fit ``est`` on train, early-stopped on val; its wall seconds, trees and val/test scores."""
    t0 = time.perf_counter()
    est.fit(*data["train"], *data["val"])
    seconds = time.perf_counter() - t0
    out = {"fit_s": round(seconds, 1), "trees": int(est.best_iteration_)}
    for s in ("val", "test"):
        out[s] = score(data[s][1], est.predict(data[s][0]))
    return out


def cluster(nodes: int, cores: int):
    """``nodes`` Ray nodes on this machine sharing ``cores`` CPUs, no dashboard."""
    from ray.cluster_utils import Cluster

    per = max(1, cores // nodes)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": per, "include_dashboard": False})
    for _ in range(nodes - 1):
        c.add_node(num_cpus=per)
    c.wait_for_nodes()
    return c


def run(root: Path, learners: list[str], workers: int, cores: int) -> dict:
    import ray

    from featurestore.executor_ray import RayExecutor

    data, cats, params = load_matrix(root)
    report = {"root": str(root), "rows": {s: len(v[1]) for s, v in data.items()}, "features": data["train"][0].shape[1],
              "workers": workers, "cores": cores, "cpu": cpu_model(), "date": str(date.today()), "learners": {}}
    c = cluster(workers, cores)
    try:
        ray.init(address=c.address, log_to_driver=False)
        for name in learners:
            cls, threads = LEARNERS[name]
            kw = {k: v for k, v in (params.get(name) or {}).items() if k != threads}
            kw |= {"categorical_features": cats} if name == "lgbm" else {}
            one = fit_scored(cls(**kw, **{threads: cores}), data)
            with use_executor(RayExecutor()):
                dp = fit_scored(cls(**kw, **{threads: max(1, cores // workers)}, data_parallel_workers=workers), data)
                tiny = data["train"][0][:200], data["train"][1][:200]
                t0 = time.perf_counter()  # the fixed cost: workers started, shards shipped, one tree, booster back
                cls(**kw, **{threads: max(1, cores // workers)}, data_parallel_workers=workers).fit(
                    *tiny, num_boost_round=1)
                dp["startup_s"] = round(time.perf_counter() - t0, 1)
            report["learners"][name] = {"one_node": one, "ray_train": dp}
            print(name, json.dumps(report["learners"][name]), flush=True)
    finally:
        ray.shutdown()
        c.shutdown()
    return report


def markdown(r: dict) -> str:
    rows = r["rows"]
    lines = [f"### Ray Train vs one node: {rows['train']:,} train / {rows['val']:,} val / {rows['test']:,} test rows x "
             f"{r['features']} features, {r['date']}, {r['cores']} cores ({r['cpu']})", "",
             f"Ray Train: {r['workers']} workers on {r['workers']} Ray nodes on this machine, "
             f"{max(1, r['cores'] // r['workers'])} thread(s) and 1/{r['workers']} of the rows each; one node: "
             f"{r['cores']} threads.", "",
             "| learner | how | fit (s) | of which start-up (s) | trees | val SRC | val MAE | test SRC | test MAE |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, both in r["learners"].items():
        for how, label in (("one_node", "one node"), ("ray_train", f"Ray Train x{r['workers']}")):
            m = both[how]
            start = f"{m['startup_s']:.1f}" if "startup_s" in m else "–"
            lines.append(f"| {name} | {label} | {m['fit_s']:.1f} | {start} | {m['trees']} | {m['val']['src']:.4f} | "
                         f"{m['val']['mae']:.4f} | {m['test']['src']:.4f} | {m['test']['mae']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="a finished holdout run's work dir")
    p.add_argument("--workers", type=int, default=2, help="Ray Train workers (= Ray nodes started here)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="cores both ways use")
    p.add_argument("--learners", default="lgbm,xgboost")
    p.add_argument("--out", type=Path, default=None, help="markdown file (a .json beside it)")
    args = p.parse_args(argv)
    learners = args.learners.split(",")
    unknown = set(learners) - set(LEARNERS)
    if unknown:
        p.error(f"unknown learners {sorted(unknown)}; known: {sorted(LEARNERS)}")
    report = run(args.root, learners, args.workers, args.cores)
    text = markdown(report)
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
