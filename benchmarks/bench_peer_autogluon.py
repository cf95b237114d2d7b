"""AutoGluon as a peer of the stack: the same model matrix, the same rows, the stack's own fit time as budget.

On a finished run (``--root``, default /work/main: ``dvc repro`` on the simulated set), one process

1. reads the run's ``train_stack`` params from its manifest (``run.json``; an incomplete run is
   refused) and loads the stack's model matrix with the stack's own code
   (``pipelines.model_inputs.load_inputs`` -> ``models.matrix.to_matrix``): same columns, same
   train/val/test rows;
2. fits the stack on it (``models.train_stack.fit_stack``, as the ``train_stack`` stage does) and
   times the whole call (base learners, OOF folds, meta-learner, refits, interval models);
3. fits AutoGluon ``TabularPredictor`` (regression, eval metric RMSE unless ``--eval-metric``) once
   per preset with ``time_limit`` = that measured time (or ``--time-limit``);
4. scores both with the project's ``models.metrics.regression_metrics`` (SRC, MAE) on val and test
   and writes one Markdown table (+ JSON) to ``--out``.

What AutoGluon sees (``autogluon_frames``): ``train_data`` = the train rows with labels,
``tuning_data`` = the val rows with labels (``use_bag_holdout=True``: bagged presets train their
folds on train rows only and use val as the holdout that scores models and fits the weighted
ensemble; unbagged presets early-stop and weight on it). The stack uses val the same way (early
stopping of the refits, interval calibration) except that its meta-learner weights come from
train OOF predictions, so AutoGluon's val figures are the more optimistic: compare on test.
Test rows reach AutoGluon only as features, after the fit, to predict; unlabelled ``predict`` rows
not at all. Columns whose name ends in ``_code`` (the stack's categorical codes) become pandas
``category`` columns, as the stack tells its GBDTs. AutoGluon's bagging folds are random, the
stack's are time-respecting: the preset's defaults are kept on purpose.

    python -m benchmarks.bench_peer_autogluon                          # both presets, budget = stack time
    python -m benchmarks.bench_peer_autogluon --presets medium_quality --time-limit 120 --out /tmp/p.md

Environment: ``autogluon.tabular`` 1.6.3 pins ``pandas<2.4`` and ``pyarrow<25``, which would
downgrade the project's venv (pandas 3.x, pyarrow 26), so it lives in a separate venv:

    python3.11 -m venv /work/peer-venv && . /work/peer-venv/bin/activate
    pip install "torch==2.13.0+cpu" --find-links /opt/wheels   # optional: CPU torch, no CUDA stack
    pip install -e "/work/main[dev,peer]"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.machine import cpu_model
from featurestore.config import config_from_dict
from featurestore.paths import Paths
from models.matrix import to_matrix
from models.metrics import regression_metrics
from models.train_gbdt import CATEGORICAL_SUFFIX
from models.train_stack import StackConfig, fit_stack
from pipelines.manifest import open_run
from pipelines.model_inputs import load_inputs
from pipelines.stage_cli import write_json

log = logging.getLogger(__name__)

LABEL = "label"
SPLITS = ("train", "val", "test")
PRESETS = ("medium_quality", "best_quality")
VERSIONS = ("autogluon.tabular", "lightgbm", "catboost", "xgboost-cpu", "xgboost", "scikit-learn", "numpy",
            "pandas", "pyarrow", "polars", "torch")


# ---------------------------------------------------------------- the matrix and AutoGluon's frames

def run_stack_config(root: Path) -> StackConfig:
    """The ``train_stack`` config of the complete run under ``root`` (its manifest's params)."""
    return config_from_dict(StackConfig, "train_stack", open_run(root).params.get("train_stack"))


def split_masks(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """split name -> (N,) bool mask over the rows of the stack's frame."""
    split = frame["split"].to_numpy()
    return {s: split == s for s in SPLITS}


def to_pandas(X: np.ndarray, names: list[str], y: np.ndarray | None = None):
    """(n, F) float32 -> a pandas DataFrame (AutoGluon's input): ``_code`` columns as category, + LABEL when y.

    The one pandas boundary of the benchmark; the stack's side stays polars/numpy.
    """
    import pandas as pd

    cols = {n: pd.Categorical(X[:, j]) if n.endswith(CATEGORICAL_SUFFIX) else X[:, j] for j, n in enumerate(names)}
    if y is not None:
        cols[LABEL] = np.asarray(y, dtype=np.float64)
    return pd.DataFrame(cols)


def autogluon_frames(frame: pl.DataFrame, names: list[str]) -> dict:
    """The stack's matrix cut for AutoGluon: {"train", "tuning"} with LABEL, {"val", "test"} features only.

    Rows keep the stack's order within each split; columns are ``names`` (``to_matrix``, the
    matrix the stack reads). Test labels are never read here.
    """
    if LABEL in names:
        raise ValueError(f"a feature column is named {LABEL!r}, AutoGluon's label column")
    X = to_matrix(frame, names)
    m = split_masks(frame)
    y = frame[LABEL].to_numpy()
    return {"train": to_pandas(X[m["train"]], names, y[m["train"]]),
            "tuning": to_pandas(X[m["val"]], names, y[m["val"]]),
            "val": to_pandas(X[m["val"]], names), "test": to_pandas(X[m["test"]], names)}


def score(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """SRC and MAE (models.metrics) of one split."""
    m = regression_metrics(y, pred)
    return {"src": m["src"], "mae": m["mae"], "n": m["n"]}


def split_labels(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """val/test labels, for scoring only (never handed to AutoGluon)."""
    m = split_masks(frame)
    y = frame[LABEL].to_numpy()
    return {s: y[m[s]] for s in ("val", "test")}


# ---------------------------------------------------------------- the two fits

def fit_stack_timed(frame: pl.DataFrame, names: list[str], group_names: dict[str, list[str]],
                    postdate: np.ndarray, cfg: StackConfig) -> dict:
    """``fit_stack`` as the train_stack stage calls it; its wall seconds and val/test predictions."""
    t0 = time.perf_counter()
    preds, _, info = fit_stack(frame, names, postdate, cfg, group_names)
    seconds = time.perf_counter() - t0
    m = split_masks(preds)
    pred = preds["pred"].to_numpy()
    return {"fit_seconds": seconds, "ensemble_seconds": info["fit_seconds"], "timings": info["timings"],
            "weights": info["weights"], "pred": {s: pred[m[s]] for s in ("val", "test")}}


def fit_autogluon(frames: dict, preset: str, time_limit: float, path: Path, *, eval_metric: str = "root_mean_squared_error",
                  num_cpus: int = 2, hyperparameters: dict | None = None, verbosity: int = 2) -> dict:
    """One TabularPredictor fit on frames["train"] (+ frames["tuning"]); seconds and val/test predictions."""
    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor(label=LABEL, problem_type="regression", eval_metric=eval_metric, path=str(path),
                                 verbosity=verbosity)
    t0 = time.perf_counter()
    predictor.fit(frames["train"], tuning_data=frames["tuning"], use_bag_holdout=True, presets=preset,
                  time_limit=time_limit, num_cpus=num_cpus, num_gpus=0, hyperparameters=hyperparameters)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    pred = {s: predictor.predict(frames[s]).to_numpy(dtype=np.float64) for s in ("val", "test")}
    board = predictor.leaderboard(silent=True)
    return {"preset": preset, "time_limit": time_limit, "fit_seconds": seconds,
            "predict_seconds": time.perf_counter() - t1, "best_model": predictor.model_best,
            "n_models": len(board), "n_features_used": len(predictor.features()), "pred": pred,
            "leaderboard": [{"model": r["model"], "score_val": float(r["score_val"]), "fit_time": float(r["fit_time"])}
                            for r in board.head(10).to_dict("records")]}


# ---------------------------------------------------------------- the report


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def reference_stack(root: Path) -> dict | None:
    """The run's own stack metrics (``reports/metrics/stack.json``): the refit here should reproduce them."""
    path = Paths(root=root).metrics / "stack.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return {s: {k: m[s][k] for k in ("src", "mae")} for s in ("val", "test") if s in m}


def result_row(name: str, labels: dict[str, np.ndarray], fit: dict) -> dict:
    """One table row: val/test SRC and MAE, fit seconds, the budget and a note."""
    row = {"model": name, "fit_s": round(fit["fit_seconds"], 1), "time_limit_s": fit.get("time_limit"),
           "note": fit.get("note", "")}
    for s in ("val", "test"):
        m = score(labels[s], fit["pred"][s])
        row |= {f"{s}_src": m["src"], f"{s}_mae": m["mae"]}
    return row


COLUMNS = (("model", "model"), ("val_src", "val SRC"), ("val_mae", "val MAE"), ("test_src", "test SRC"),
           ("test_mae", "test MAE"), ("fit_s", "fit s"), ("time_limit_s", "time limit s"), ("note", "note"))


def cell(key: str, value: object) -> str:
    """Metrics to 4 decimals, seconds to whole seconds, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if key in ("fit_s", "time_limit_s") else f"{value:.4f}"
    return str(value)


def context_lines(report: dict) -> list[str]:
    """The bullet list above the table: when, where, what was compared and how."""
    s, v, ref = report["sizes"], report["versions"], report.get("reference_stack")
    own = ", ".join(f"{k} SRC {x['src']:.4f} MAE {x['mae']:.4f}" for k, x in ref.items()) if ref else "none"
    return [
        (f"- date: {report['date']}; CPU: {report['cpu']} ({report['cores']} cores visible); load average "
         f"{report['loadavg_start']} at start, {report['loadavg_end']} at end: the machine was shared, other work "
         "ran beside this benchmark, so the seconds are indicative"),
        (f"- run: {report['root']}; matrix: {s['n_features']} features ({s['n_categorical']} categorical codes), "
         f"train {s['train']}, val {s['val']}, test {s['test']} rows (the {s['predict']} unlabelled predict rows unused)"),
        (f"- stack: {report['stack_learners']} + {report['stack_meta']} meta-learner, the run's train_stack params; "
         f"fit s = the whole `fit_stack` call (ensemble {report['stack_ensemble_seconds']:.0f} s + interval models)"),
        (f"- AutoGluon {v.get('autogluon.tabular', '?')}: train_data = train rows, tuning_data = val rows "
         f"(use_bag_holdout=True), eval_metric {report['eval_metric']}, num_cpus {report['num_cpus']}, time_limit = "
         "the stack's fit s unless overridden; test labels never passed. AutoGluon uses val for model selection "
         "and ensemble weights, so its val SRC is optimistic: compare on test"),
        f"- the run's own stack metrics (reports/metrics/stack.json), which the refit here should reproduce: {own}",
        "- metrics: models.metrics.regression_metrics for every row; versions: " + ", ".join(f"{k} {x}" for k, x in v.items()),
    ]


def preset_lines(report: dict) -> list[str]:
    """Per preset: where its time went (AutoGluon's leaderboard: model, fit seconds, val RMSE) and any overrun."""
    out = []
    for p in report.get("autogluon", []):
        models = ", ".join(f"{m['model']} {m['fit_time']:.0f} s ({m['score_val']:.4f})" for m in p["leaderboard"])
        over = p["fit_seconds"] - p["time_limit"]
        used = f", {p['n_features_used']} of {report['sizes']['n_features']} features used" \
            if "n_features_used" in p else ""
        out.append(f"- {p['preset']}: {models}; predict {p['predict_seconds']:.1f} s{used}"
                   + (f"; fit ran {over:.0f} s past time_limit" if over > 0.05 * p["time_limit"] else ""))
    return out


def markdown(report: dict) -> str:
    """The results page: context lines, one table of the stack and each preset, then each preset's models."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(k, r.get(k)) for k, _ in COLUMNS) + " |" for r in report["rows"]]
    head = ["# AutoGluon peer benchmark: the stack vs TabularPredictor on the stack's matrix", "",
            f"`{report['command']}`", ""]
    presets = preset_lines(report)
    tail = ["", "AutoGluon's models per preset (fit seconds, val score = -RMSE):", "", *presets] if presets else []
    return "\n".join([*head, *context_lines(report), "", *lines, *tail, ""])


def make_report(args: argparse.Namespace, frame: pl.DataFrame, names: list[str], cfg: StackConfig, stack: dict,
                peers: list[dict], load_start: tuple[float, ...]) -> dict:
    labels = split_labels(frame)
    m = split_masks(frame)
    stack_row = result_row("stack", labels, {**stack, "note": "weights " + ", ".join(
        f"{k} {w:.2f}" for k, w in stack["weights"].items())})
    rows = [stack_row] + [result_row(f"AutoGluon {p['preset']}", labels,
                                     {**p, "note": f"best {p['best_model']}, {p['n_models']} models"}) for p in peers]
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": args.command, "cpu": cpu_model(),
            "cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()], "root": str(args.root),
            "sizes": {**{s: int(m[s].sum()) for s in SPLITS}, "predict": int((frame["split"] == "predict").sum()),
                      "n_features": len(names), "n_categorical": sum(n.endswith(CATEGORICAL_SUFFIX) for n in names)},
            "stack_learners": "+".join(cfg.learners), "stack_meta": cfg.meta,
            "stack_ensemble_seconds": stack["ensemble_seconds"], "stack_timings": stack["timings"],
            "reference_stack": reference_stack(args.root), "eval_metric": args.eval_metric, "num_cpus": args.num_cpus, "versions": versions(), "rows": rows,
            "autogluon": [{k: v for k, v in p.items() if k != "pred"} for p in peers]}


def write_results(report: dict, out: Path) -> str:
    """``out`` (Markdown) and ``out`` with .json beside it; returns the Markdown."""
    text = markdown(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    write_json(out.with_suffix(".json"), report)
    return text


# ---------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_peer_autogluon", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("/work/main"),
                    help="a complete run (run.json status complete) whose tables and params are read (default /work/main)")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated AutoGluon presets (default: %(default)s)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="AutoGluon time_limit per preset in seconds (default: the stack's measured fit seconds)")
    ap.add_argument("--eval-metric", default="root_mean_squared_error",
                    help="AutoGluon eval_metric (default %(default)s: the squared loss the stack's learners minimise)")
    ap.add_argument("--num-cpus", type=int, default=2, help="AutoGluon num_cpus (default 2: the stack's thread count)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="where AutoGluon saves its models (default: a temporary directory, removed afterwards)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/peer_autogluon.md"),
                    help="Markdown results; the JSON goes beside it (default %(default)s)")
    args = ap.parse_args(argv)
    args.command = ("python -m benchmarks.bench_peer_autogluon " + shlex.join(sys.argv[1:] if argv is None else argv)).strip()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    load_start = os.getloadavg()
    cfg = run_stack_config(args.root)
    frame, names, group_names, postdate = load_inputs(Paths(root=args.root), cfg.all_groups)
    frames = autogluon_frames(frame, names)
    log.info("matrix: %d rows x %d features; fitting the stack (%s)", frame.height, len(names), "+".join(cfg.learners))
    stack = fit_stack_timed(frame, names, group_names, postdate, cfg)
    budget = args.time_limit if args.time_limit is not None else stack["fit_seconds"]
    log.info("stack: %.0f s; AutoGluon time_limit %.0f s per preset", stack["fit_seconds"], budget)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="peer_autogluon_"))
    peers = []
    try:
        for preset in [p for p in args.presets.split(",") if p]:
            peers.append(fit_autogluon(frames, preset, budget, work / preset, eval_metric=args.eval_metric,
                                       num_cpus=args.num_cpus))
            log.info("AutoGluon %s: %.0f s, best %s", preset, peers[-1]["fit_seconds"], peers[-1]["best_model"])
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(write_results(make_report(args, frame, names, cfg, stack, peers, load_start), args.out))


if __name__ == "__main__":
    main()
