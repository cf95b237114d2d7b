"""Can the stack's LightGBM follow the time trend? Drift measured, then remedies ablated on the stack's matrix.

1. Drift: real SMPD label means by posting-rank bin and what a line fitted on the first 80%
   forecasts for the last 20% (``../shared/smpd/real_train_labels_time_ordered.csv``, when
   present); the same on the run's labelled posts; the simulator's planted trend (its oracle's
   ``trend`` contribution, in latent and label units); and how much of the stack's val-to-test
   gap a level shift explains (``models.drift.residual_shift`` on the stored predictions).
2. Ablation: on exactly the stack's matrix (``pipelines.model_inputs.load_inputs`` +
   ``models.matrix.to_matrix``, the run's ``train_stack`` params from its manifest), the
   ``lgbm`` learner with its ``learner_params`` is fitted on train and early-stopped on val, once
   per option and seed: none / detrended target (``models.drift.DetrendedRegressor``) / recency
   weights (``RecencyWeightedRegressor``) / LightGBM ``linear_tree`` / combinations / label-free
   recent-activity counts (posts of the same concept, subcategory, category in the last 7 and
   30 days, unlabelled posts included). The option is chosen by mean val SRC; test only reports.

    python -m benchmarks.bench_drift                      # --root /work/main, 3 seeds, every option
    python -m benchmarks.bench_drift --seeds 42 --options none,detrend_linear

Writes ``benchmarks/results/drift_ablation.md`` and ``.json``. Reads the run; writes nothing in it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.machine import cpu_model
from featurestore.config import config_from_dict
from featurestore.paths import Paths
from featurestore.simulate import SimConfig, expected_label
from models.drift import (
    TREND_KINDS,
    DetrendedRegressor,
    RecencyWeightedRegressor,
    TimeTrend,
    binned_means,
    residual_shift,
    trend_extrapolation,
)
from models.gbdt import LightGBMRegressor
from models.learners import create_learner
from models.matrix import to_matrix
from models.metrics import regression_metrics
from models.stacking import StackedEnsemble
from models.train_gbdt import CATEGORICAL_SUFFIX
from models.train_stack import StackConfig
from pipelines.manifest import open_run
from pipelines.model_inputs import load_inputs

TIME_COLUMNS = ("time_days_since_epoch", "base_time_days_since_epoch")  # post time in days, in the matrix
DAY = 86400
ACTIVITY_KEYS = ("concept", "subcategory", "category")
ACTIVITY_DAYS = (7, 30)
FIT_SHARES = (0.8, 0.9, 0.95)  # drift: a trend fitted on the earliest share forecasts the rest's mean
STACK_TARGET = "stack_detrend_"  # run_stacked: detrend the stack's target, not the learner's
OUT = Path(__file__).resolve().parent / "results" / "drift_ablation"


class LinearTreeLightGBM(LightGBMRegressor):
    """The project's LightGBMRegressor with linear models in the leaves (LightGBM ``linear_tree``).

    Benchmark-only subclass: the wrapper has no ``linear_tree`` keyword (see the report for the
    two-line change that would make it a ``learner_params`` entry).
    """

    def _lgb_params(self) -> dict:
        return {**super()._lgb_params(), "linear_tree": True, "linear_lambda": 1.0}


# ---------------------------------------------------------------- options

# DetrendedRegressor settings by name: options detrend_<name>, and stacked stack_detrend_<name>
TRENDS = {"linear": {}, "linear_flat": {"extrapolate_days": 0.0}, "huber": {"trend": "huber"},
          "piecewise": {"trend": "piecewise", "n_knots": 3},
          "piecewise_h60": {"trend": "piecewise", "n_knots": 3, "extrapolate_days": 60.0}}


def option_factories(params: dict, cats: tuple[int, ...], names: tuple[str, ...], tcol: int) -> dict:
    """option name -> (seed -> unfitted estimator on the stack's matrix (+ activity columns for ``activity*``))."""
    def lgbm(seed):
        return create_learner("lgbm", {**params, "seed": seed}, cats, names)

    def linear(seed):
        return LinearTreeLightGBM(**{**params, "seed": seed}, categorical_features=cats)

    def detrend(inner, **kw):
        return lambda seed: DetrendedRegressor(inner(seed), time_column=tcol, **kw)

    def recency(inner, half_life):
        return lambda seed: RecencyWeightedRegressor(inner(seed), time_column=tcol, half_life_days=half_life)

    return {
        "none": lgbm,
        **{f"detrend_{k}": detrend(lgbm, **kw) for k, kw in TRENDS.items()},
        "recency_hl60": recency(lgbm, 60.0),
        "recency_hl180": recency(lgbm, 180.0),
        "linear_tree": linear,
        "detrend_linear+recency_hl180": detrend(recency(lgbm, 180.0)),
        "detrend_piecewise+recency_hl180": detrend(recency(lgbm, 180.0), **TRENDS["piecewise"]),
        "linear_tree+recency_hl180": recency(linear, 180.0),
        "activity": lgbm,
        "activity+detrend_piecewise": detrend(lgbm, **TRENDS["piecewise"]),
    }


def activity_counts(paths: Paths, pids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(N, 9) float32 label-free counts for ``pids``: posts of the same concept/subcategory/category
    (and of any kind) in the ``ACTIVITY_DAYS`` days strictly before each post; every ingested post counts."""
    posts = pl.read_parquet(paths.table("posts")).select("pid", "postdate")
    cats = pl.read_parquet(paths.table("categories")).select("pid", *ACTIVITY_KEYS)
    allp = posts.join(cats, on="pid", how="left")
    t_all = allp["postdate"].to_numpy().astype(np.int64)
    rows = pl.DataFrame({"pid": pids}).join(allp, on="pid", how="left", maintain_order="left")
    t = rows["postdate"].to_numpy().astype(np.int64)
    cols, names = [], []
    for key in (*ACTIVITY_KEYS, None):
        if key is None:
            k_all, k = np.zeros(len(t_all), np.int64), np.zeros(len(t), np.int64)
        else:
            vocab = {v: i for i, v in enumerate(allp[key].unique().to_list())}
            k_all = np.array([vocab[v] for v in allp[key].to_list()], np.int64)
            k = np.array([vocab.get(v, -1) for v in rows[key].to_list()], np.int64)
        stamp = np.sort(k_all * 10**10 + t_all)  # (group, time) in one sortable int64
        for days in ACTIVITY_DAYS:
            q = k * 10**10 + t
            cols.append(np.searchsorted(stamp, q, "left") - np.searchsorted(stamp, q - days * DAY, "left"))
            names.append(f"act_{key or 'all'}_{days}d")
    return np.column_stack(cols).astype(np.float32), names


def run_ablation(X, y, split, factories: dict, seeds: list[int], extra: np.ndarray | None) -> list[dict]:
    """Fit every option x seed on train (early stopping on val); val and test metrics per fit."""
    tr, va, te = (split == s for s in ("train", "val", "test"))
    rows = []
    for name, make in factories.items():
        Xo = np.hstack([X, extra]) if name.startswith("activity") else X
        for seed in seeds:
            t0 = time.perf_counter()
            est = make(seed).fit(Xo[tr], y[tr], Xo[va], y[va])
            pv, pt = est.predict(Xo[va]), est.predict(Xo[te])
            row = {"option": name, "seed": seed, "best_iteration": est.best_iteration_,
                   "seconds": round(time.perf_counter() - t0, 1),
                   "val": regression_metrics(y[va], pv), "test": regression_metrics(y[te], pt),
                   "val_mean_residual": float((y[va] - pv).mean()), "test_mean_residual": float((y[te] - pt).mean())}
            trend = getattr(est, "trend_", None)
            if trend is not None:
                row["trend_slope_per_30d"] = trend.slope() * 30
            rows.append(row)
            print(f"{name:30s} seed {seed}: val SRC {row['val']['src']:.4f} MAE {row['val']['mae']:.4f} | "
                  f"test SRC {row['test']['src']:.4f} MAE {row['test']['mae']:.4f} ({row['seconds']} s, "
                  f"{row['best_iteration']} it)", flush=True)
    return rows


def run_stacked(X, y, postdate, split, options: list[str], factories: dict, fold_factories: dict, cfg: StackConfig,
                seed: int, extra: np.ndarray | None, tcol: int) -> list[dict]:
    """Each option as the stack fits a learner: time-respecting OOF fits (``fold_params``) + the NNLS
    meta-learner (its intercept corrects a constant level shift) + the refit early-stopped on val.

    ``stack_detrend_<name>``: the plain learner inside a stack whose target is detrended once, by the
    ``TimeTrend`` of ``TRENDS[name]`` fitted on all train labels (the fold models then see a trend fitted partly on
    their held-out block's labels: train labels only, but not fold-faithful).
    """
    tr, va, te = (split == s for s in ("train", "val", "test"))
    rows = []
    for name in options:
        Xo = np.hstack([X, extra]) if name.startswith("activity") else X
        t0 = time.perf_counter()
        spec = TRENDS[name[len(STACK_TARGET):]] if name.startswith(STACK_TARGET) else None
        learner = "none" if spec is not None else name
        off = np.zeros(len(y)) if spec is None else trend_of(spec).fit(Xo[tr, tcol], y[tr]).predict(Xo[:, tcol])
        ens = StackedEnsemble({"lgbm": lambda n=learner: factories[n](seed)}, meta=cfg.meta, n_folds=cfg.n_folds,
                              scheme=cfg.scheme, gap=cfg.gap_days * DAY, es_fraction=cfg.es_fraction, seed=cfg.seed,
                              fold_learners={"lgbm": lambda n=learner: fold_factories[n](seed)})
        ens.fit(Xo[tr], y[tr] - off[tr], postdate[tr], Xo[va], y[va] - off[va])
        pv, pt = ens.predict(Xo[va]) + off[va], ens.predict(Xo[te]) + off[te]
        rows.append({"option": name, "seed": seed, "weights": ens.weights_, "intercept": ens.intercept_,
                     "seconds": round(time.perf_counter() - t0, 1), "val": regression_metrics(y[va], pv),
                     "test": regression_metrics(y[te], pt), "val_mean_residual": float((y[va] - pv).mean()),
                     "test_mean_residual": float((y[te] - pt).mean())})
        r = rows[-1]
        print(f"stacked {name:22s}: val SRC {r['val']['src']:.4f} MAE {r['val']['mae']:.4f} | test SRC "
              f"{r['test']['src']:.4f} MAE {r['test']['mae']:.4f} (intercept {r['intercept']:+.3f}, "
              f"{r['seconds']} s)", flush=True)
    return rows


def trend_of(spec: dict) -> TimeTrend:
    """The TimeTrend of a TRENDS entry (DetrendedRegressor's keywords)."""
    return TimeTrend(kind=spec.get("trend", "linear"), n_knots=spec.get("n_knots", 3),
                     extrapolate_days=spec.get("extrapolate_days"))


def summarise(rows: list[dict]) -> list[dict]:
    """Per option: mean and sd over seeds of val/test SRC and MAE, mean iterations and seconds."""
    out = []
    for name in dict.fromkeys(r["option"] for r in rows):
        rs = [r for r in rows if r["option"] == name]
        s = {"option": name, "n_seeds": len(rs)}
        for part in ("val", "test"):
            for m in ("src", "mae"):
                v = np.array([r[part][m] for r in rs])
                s[f"{part}_{m}"], s[f"{part}_{m}_sd"] = float(v.mean()), float(v.std())
            s[f"{part}_mean_residual"] = float(np.mean([r[f"{part}_mean_residual"] for r in rs]))
        s["best_iteration"] = float(np.mean([r["best_iteration"] for r in rs]))
        s["seconds"] = float(np.mean([r["seconds"] for r in rs]))
        out.append(s)
    return out


# ---------------------------------------------------------------- drift measurements

def extrapolations(t: np.ndarray, y: np.ndarray) -> dict:
    """trend_extrapolation for each fitted share and trend kind: "<share>/<kind>" -> its dict."""
    return {f"{f:.2f}/{k}": trend_extrapolation(t, y, f, kind=k) for f in FIT_SHARES for k in TREND_KINDS}


def real_drift(path: Path) -> dict | None:
    """Real SMPD labels in posting order: bin means and 80/20 extrapolation (t = rank / n)."""
    if not path.is_file():
        return None
    d = pl.read_csv(path).sort("postdate_rank")
    y = d["label"].to_numpy().astype(np.float64)
    t = np.arange(len(y)) / len(y)
    return {"n": len(y), "deciles": binned_means(t, y, 10), "twentieths": binned_means(t, y, 20),
            "extrapolation": extrapolations(t, y)}


def sim_drift(paths: Paths, params: dict) -> dict:
    """The run's labelled posts (train+val+test) by posting rank; the oracle's planted trend when present."""
    split = pl.read_parquet(paths.table("split")).select("pid", "postdate", "split")
    lab = split.join(pl.read_parquet(paths.table("labels")).select("pid", "label"), on="pid") \
        .filter(pl.col("split").is_in(["train", "val", "test"])).sort("postdate", "pid")
    y = lab["label"].to_numpy().astype(np.float64)
    t = np.arange(len(y)) / len(y)
    out = {"n": len(y), "deciles": binned_means(t, y, 10),
           "extrapolation": extrapolations(t, y)}
    if paths.oracle.is_file():
        out["oracle_trend"] = oracle_trend(paths, lab, params)
    return out


def oracle_trend(paths: Paths, lab: pl.DataFrame, params: dict) -> dict:
    """The planted trend contribution on the labelled posts, latent and in label units
    (expected label minus the expected label with the trend held at its train mean)."""
    o = lab.join(pl.read_parquet(paths.oracle).select("pid", "signal", "trend"), on="pid", how="left")
    sig, trend = o["signal"].to_numpy(), o["trend"].to_numpy()
    noise_sd = float(np.sqrt(1.0 - SimConfig.from_dict(params.get("simulate")).signal_r2))
    train_mean = float(trend[o["split"].to_numpy() == "train"].mean())
    expected = expected_label(sig, noise_sd)
    effect = expected - expected_label(sig - trend + train_mean, noise_sd)
    t = np.arange(len(sig)) / len(sig)
    s = o["split"].to_numpy()
    tail = np.flatnonzero(s == "train")[-int(0.1 * (s == "train").sum()):]  # the latest 10% of train (time order)
    beyond = {k: {"trend": float(effect[s == k].mean() - effect[tail].mean()),
                  "expected_label": float(expected[s == k].mean() - expected[tail].mean())} for k in ("val", "test")}
    return {"latent_deciles": [b["mean"] for b in binned_means(t, trend, 10)],
            "label_deciles": [b["mean"] for b in binned_means(t, effect, 10)],
            "label_by_split": {k: float(effect[s == k].mean()) for k in ("train", "val", "test")},
            "latent_by_split": {k: float(trend[s == k].mean()) for k in ("train", "val", "test")},
            "beyond_train_end": beyond}


def stack_gap(paths: Paths) -> dict:
    """residual_shift of the stored stack (and its lgbm) predictions on val and test, 14-day bins."""
    p = pl.read_parquet(paths.table("predictions_stack")).join(
        pl.read_parquet(paths.table("split")).select("pid", "postdate"), on="pid")
    out = {}
    for col in ("pred", "pred_lgbm"):
        parts = {}
        for s in ("val", "test"):
            d = p.filter(pl.col("split") == s)
            parts[s] = residual_shift(d["label"].to_numpy(), d[col].to_numpy(), d["postdate"].to_numpy() / DAY, 14.0)
            parts[s]["label_sd"] = float(d["label"].std())
        parts["gap"] = {key: {m: parts["test"][key][m] - parts["val"][key][m] for m in ("src", "mae")}
                        for key in ("as_predicted", "mean_removed", "bin_means_removed")}
        out[col] = parts
    return out


# ---------------------------------------------------------------- report


def choose(summary: list[dict]) -> dict:
    """The option with the highest mean val SRC (ties: lower val MAE); rows with val_src/val_mae or val{src,mae}."""
    def key(s):
        src, mae = (s["val_src"], s["val_mae"]) if "val_src" in s else (s["val"]["src"], s["val"]["mae"])
        return round(src, 6), -mae
    return max(summary, key=key)


def drift_lines(drift: dict) -> list[str]:
    """Markdown of the drift measurements."""
    out = ["## 1. Drift", ""]
    for key, title in (("real_smpd", "Real SMPD train labels (305,613, posting order)"),
                       ("simulated_run", "The run's labelled posts (train + val + test, posting order)")):
        d = drift.get(key)
        if d is None:
            out += [f"{title}: file not present, skipped.", ""]
            continue
        out += [f"**{title}** — mean label by posting-rank decile:", "",
                "| decile | " + " | ".join(str(b["bin"]) for b in d["deciles"]) + " |",
                "|---" * (len(d["deciles"]) + 1) + "|",
                "| mean | " + " | ".join(f"{b['mean']:.2f}" for b in d["deciles"]) + " |", "",
                "Forecast of the rest's mean label from the earliest share of posts (error = forecast - actual):",
                "", "| share / trend fitted | trend's change over the share | actual rest | trend forecast (error) "
                "| flat mean (error) | last 12.5% of the share (error) |", "|---|---|---|---|---|---|"]
        for kind, e in d["extrapolation"].items():
            out.append(f"| {kind} | {e['change_over_fit']:+.3f} | {e['actual_rest']:.3f} | {e['forecast_trend']:.3f} "
                       f"({e['error_trend']:+.3f}) | {e['forecast_flat']:.3f} ({e['error_flat']:+.3f}) | "
                       f"{e['forecast_last_level']:.3f} ({e['error_last_level']:+.3f}) |")
        out.append("")
        ot = d.get("oracle_trend")
        if ot:
            out += ["The simulator's planted trend on these posts (oracle `trend` contribution):", "",
                    "| decile | " + " | ".join(str(i) for i in range(10)) + " |", "|---" * 11 + "|",
                    "| latent | " + " | ".join(f"{v:+.3f}" for v in ot["latent_deciles"]) + " |",
                    "| label units | " + " | ".join(f"{v:+.3f}" for v in ot["label_deciles"]) + " |", "",
                    "Mean planted trend effect by split, label units (vs the train mean): " + ", ".join(
                        f"{k} {v:+.3f}" for k, v in ot["label_by_split"].items()) + ".  ",
                    "Beyond the latest 10% of train (what a flat continuation misses), label units: " + "; ".join(
                        f"{k}: planted trend {v['trend']:+.3f}, whole expected label {v['expected_label']:+.3f}"
                        for k, v in ot["beyond_train_end"].items()), ""]
    out += ["**The stack's val-to-test gap** (stored predictions; diagnostic: the shifts use each split's own "
            "labels):", "", "| model | split | label sd | mean residual y-pred | SRC | MAE | MAE, mean shift removed "
            "| SRC / MAE, 14-day-bin shifts removed |", "|---|---|---|---|---|---|---|---|"]
    for col, parts in drift["stack_gap"].items():
        for s in ("val", "test"):
            p = parts[s]
            out.append(f"| {col} | {s} | {p['label_sd']:.3f} | {p['mean_residual']:+.3f} | {p['as_predicted']['src']:.4f} | "
                       f"{p['as_predicted']['mae']:.4f} | {p['mean_removed']['mae']:.4f} | "
                       f"{p['bin_means_removed']['src']:.4f} / {p['bin_means_removed']['mae']:.4f} |")
        g = parts["gap"]
        out.append(f"| {col} | test - val | | | {g['as_predicted']['src']:+.4f} | {g['as_predicted']['mae']:+.4f} | "
                   f"{g['mean_removed']['mae']:+.4f} | {g['bin_means_removed']['src']:+.4f} / "
                   f"{g['bin_means_removed']['mae']:+.4f} |")
    return out + [""]


def markdown(result: dict) -> str:
    """The results file: command, machine, drift measurements, the ablation table, the choice."""
    lines = ["# Time drift: measurements and remedies (issue 14)", "",
             f"Command: `{result['command']}`  ", f"Date: {result['date']}  ", f"CPU: {result['cpu']}  ",
             f"Run: `{result['root']}` (train {result['n']['train']}, val {result['n']['val']}, test "
             f"{result['n']['test']}; {result['n_features']} features; time column `{result['time_column']}`)  ",
             f"LightGBM: the run's `train_stack.learner_params.lgbm` {result['lgbm_params']}, early-stopped on val", "",
             *drift_lines(result["drift"]),
             "## 2. Ablation (LightGBM on the stack's matrix; mean ± sd over seeds)", "",
             "| option | val SRC | val MAE | test SRC | test MAE | val / test mean residual | trees | s/fit |",
             "|---|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(f"| {s['option']} | {s['val_src']:.4f} ± {s['val_src_sd']:.4f} | {s['val_mae']:.4f} ± "
                     f"{s['val_mae_sd']:.4f} | {s['test_src']:.4f} ± {s['test_src_sd']:.4f} | {s['test_mae']:.4f} ± "
                     f"{s['test_mae_sd']:.4f} | {s['val_mean_residual']:+.3f} / {s['test_mean_residual']:+.3f} | "
                     f"{s['best_iteration']:.0f} | {s['seconds']:.0f} |")
    if result.get("stacked"):
        lines += ["", "As the stack fits it (one seed: OOF fits + NNLS meta-learner, whose intercept absorbs a "
                  "constant shift, + refit early-stopped on val):", "",
                  "| option | val SRC | val MAE | test SRC | test MAE | val / test mean residual | intercept | s |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in result["stacked"]:
            lines.append(f"| {r['option']} | {r['val']['src']:.4f} | {r['val']['mae']:.4f} | {r['test']['src']:.4f} | "
                         f"{r['test']['mae']:.4f} | {r['val_mean_residual']:+.3f} / {r['test_mean_residual']:+.3f} | "
                         f"{r['intercept']:+.3f} | {r['seconds']:.0f} |")
        lines += ["", f"Chosen among these by val SRC (ties: val MAE): **{result['stacked_chosen_by_val']}**."]
    best = next(s for s in result["summary"] if s["option"] == result["chosen_by_val"])
    base = next((s for s in result["summary"] if s["option"] == "none"), None)
    lines += ["", f"Chosen by val SRC: **{best['option']}**"]
    if base is not None:
        lines[-1] += (f" (val SRC {best['val_src'] - base['val_src']:+.4f}, test SRC "
                      f"{best['test_src'] - base['test_src']:+.4f}, test MAE {best['test_mae'] - base['test_mae']:+.4f} "
                      "vs none).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/work/main"), help="the run's work root (read only)")
    ap.add_argument("--seeds", default="42,43,44")
    ap.add_argument("--options", default="", help="comma-separated subset of the options (default: all)")
    ap.add_argument("--stacked", default="none,detrend_linear,detrend_piecewise,recency_hl180,stack_detrend_linear,"
                    "stack_detrend_piecewise,stack_detrend_piecewise_h60",
                    help="options also fitted as the stack fits a learner (OOF + NNLS meta-learner), first seed")
    ap.add_argument("--real-labels", type=Path, default=None,
                    help="real SMPD labels in posting order (default: <root>/../shared/smpd/...)")
    ap.add_argument("--out", type=Path, default=OUT, help="output path without suffix (.md and .json)")
    args = ap.parse_args(argv)
    run = open_run(args.root)
    paths = Paths(root=args.root, smpd=run.smpd_dir)
    cfg = config_from_dict(StackConfig, "train_stack", run.params.get("train_stack"))
    real_path = args.real_labels or args.root.parent / "shared" / "smpd" / "real_train_labels_time_ordered.csv"
    drift = {"real_smpd": real_drift(real_path), "simulated_run": sim_drift(paths, run.params),
             "stack_gap": stack_gap(paths)}
    frame, names, group_names, postdate = load_inputs(paths, cfg.all_groups)
    cols = cfg.learner_columns(group_names, names)["lgbm"]
    if cols is not None:
        names = [names[i] for i in cols]
    X, y, split = to_matrix(frame, names), frame["label"].to_numpy(), frame["split"].to_numpy()
    cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
    tname = next(c for c in TIME_COLUMNS if c in names)
    params = dict(cfg.learner_params.get("lgbm", {}))
    factories = option_factories(params, cats, tuple(names), names.index(tname))
    fold_factories = option_factories({**params, **cfg.fold_params.get("lgbm", {})}, cats, tuple(names),
                                      names.index(tname))
    chosen = args.options.split(",") if args.options else list(factories)
    stacked = [o for o in args.stacked.split(",") if o]
    extra, extra_names = activity_counts(paths, frame["pid"].to_numpy()) if any(
        k.startswith("activity") for k in chosen + stacked) else (None, [])
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = run_ablation(X, y, split, {k: factories[k] for k in chosen}, seeds, extra)
    summary = summarise(rows)
    stacked_rows = run_stacked(X, y, postdate, split, stacked, factories, fold_factories, cfg, seeds[0], extra,
                               names.index(tname))
    result = {"command": "python -m benchmarks.bench_drift " + " ".join(sys.argv[1:] if argv is None else argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": cpu_model(), "root": str(args.root),
              "lgbm_params": params, "time_column": tname, "n_features": len(names),
              "activity_columns": extra_names, "n": {s: int((split == s).sum()) for s in ("train", "val", "test")},
              "drift": drift, "summary": summary, "chosen_by_val": choose(summary)["option"], "stacked": stacked_rows,
              "stacked_chosen_by_val": choose(stacked_rows)["option"] if stacked_rows else None, "fits": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float))
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {args.out}.md/.json; chosen by val: {result['chosen_by_val']}")


if __name__ == "__main__":
    main()
