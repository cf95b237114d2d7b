"""Submit-like evaluation: what using every label (submit mode) gains.

Submit mode (``smpp run --mode submit``) has no labelled posts left to score, so two measurements:

1. Submit-like, on the holdout split (params' ``split.fractions``; the test split's labels stay
   invisible to every feature and every fit). ``smpp run --mode holdout`` once per variant, each
   adding part of ``pipelines.runner.USE_ALL_LABELS`` (what submit mode switches on beyond its
   fractions), scored on the test split against ``holdout``:
   - ``holdout``:      the params as given (train labels visible, no refit);
   - ``refit``:        + ``train_lgbm/train_stack.refit_full`` (every model refitted on train + val);
   - ``submit_like``:  + ``split.label_visible: [train, val]`` too: all of ``USE_ALL_LABELS``;
   - ``visible``:      ``split.label_visible: [train, val]`` alone.
2. Submit mode itself, on simulated data (the simulator keeps the test files' labels beside the
   SMPD directory, ``smpd.oracle.parquet``; no run reads them): ``submit_before`` (what
   ``--mode submit`` did before: fractions [0.9, 0.1, 0], only train_lgbm refitted, train labels
   visible) against ``submit`` (``--mode submit`` now), both scored on the test-file posts.

Every variant runs into one work dir in this order, so the incremental run reuses what a variant
does not change (ingest, image statistics; only ``split`` and what reads it rerun when the split or
visibility changes). Evaluations and predictions are kept under ``WORKDIR/results/``; each gain gets
a paired bootstrap 95% interval over the scored posts. Prints (and with ``--out`` writes) markdown.

    python -m benchmarks.bench_submit_like --smpd-dir data/raw/smpd --workdir /tmp/submit-like \\
        [--params params.yaml] [--threads 1] [--variants holdout,refit,...] [--out FILE.md]

``--threads N`` sets every GBDT fit's thread count (the same in every variant): on a shared box one
thread per fit avoids OpenMP oversubscription.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from benchmarks.machine import cpu_model
from featurestore.config import load_params, merge_params
from featurestore.paths import Paths
from models.metrics import regression_metrics

REPO = Path(__file__).resolve().parents[1]
MODELS = {"stack": "data/preds/stack.parquet", "lgbm": "data/preds/lgbm.parquet"}
HIDDEN = "predict"  # the test-file posts, scored with the simulator's labels


@dataclass(frozen=True)
class Variant:
    overrides: dict
    mode: str = "holdout"
    baseline: str | None = None  # the variant its gains are measured against


def variants() -> dict[str, Variant]:
    """Variant name -> how it runs, in the order that reuses the most stages."""
    from pipelines.runner import USE_ALL_LABELS

    refit = {k: v for k, v in USE_ALL_LABELS.items() if k != "split"}
    before = {"split": {"fractions": [0.9, 0.1, 0.0]}, "train_lgbm": {"refit_full": True}}
    return {"holdout": Variant({}), "refit": Variant(refit, baseline="holdout"),
            "submit_like": Variant(USE_ALL_LABELS, baseline="holdout"),
            "visible": Variant({"split": USE_ALL_LABELS["split"]}, baseline="holdout"),
            "submit_before": Variant(before), "submit": Variant({}, mode="submit", baseline="submit_before")}


def thread_overrides(n: int) -> dict:
    """Params that give every GBDT fit (train_lgbm, the stack's learners and quantile models) ``n`` threads."""
    return {"train_lgbm": {"num_threads": n},
            "train_stack": {"learner_params": {"lgbm": {"num_threads": n}, "catboost": {"thread_count": n},
                                               "xgboost": {"nthread": n}}}}


def run_variant(name: str, variant: Variant, base: dict, smpd: Path, workdir: Path) -> dict:
    """One ``smpp run``; its predictions go to ``WORKDIR/results/<name>_<model>.parquet``."""
    from pipelines import cli

    params_file = workdir / "params" / f"{name}.yaml"
    params_file.parent.mkdir(parents=True, exist_ok=True)
    params_file.write_text(yaml.safe_dump(merge_params(base, variant.overrides), sort_keys=False))
    work = workdir / "work"
    t0 = time.perf_counter()
    rc = cli.main(["run", "--smpd-dir", str(smpd), "--workdir", str(work), "--mode", variant.mode,
                   "--params", str(params_file)])
    if rc != 0:
        raise SystemExit(f"variant {name}: smpp run exited {rc}")
    out = workdir / "results"
    out.mkdir(exist_ok=True)
    shutil.copyfile(work / "reports/evaluation.json", out / f"{name}_evaluation.json")
    for model, rel in MODELS.items():
        shutil.copyfile(work / rel, out / f"{name}_{model}.parquet")
    stages = json.loads((work / "run.json").read_text())["stages"]
    return {"seconds": round(time.perf_counter() - t0, 1),
            "ran": sorted(s for s, r in stages.items() if r["status"] == "done")}


def scored(preds: pl.DataFrame, split: str, oracle: pl.DataFrame | None) -> pl.DataFrame:
    """(pid, label, pred) of ``split``'s posts with a label, sorted by pid; the hidden split's labels from the oracle."""
    part = preds.filter(pl.col("split") == split)
    if split == HIDDEN:
        if oracle is None:
            return part.select("pid", "label", "pred").clear()
        part = part.drop("label").join(oracle.select("pid", "label"), on="pid", how="inner")
    return part.filter(pl.col("label").is_not_null()).select("pid", "label", "pred").sort("pid")


def paired_gain(a: pl.DataFrame, b: pl.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Gain of ``b`` over ``a`` on the same posts (``scored`` frames): dSRC, dMAE with bootstrap 95% CIs."""
    if not a["pid"].equals(b["pid"]):
        raise ValueError("the two runs scored different posts")
    y, pa_, pb = a["label"].to_numpy(), a["pred"].to_numpy(), b["pred"].to_numpy()

    def gains(idx):
        ma, mb = regression_metrics(y[idx], pa_[idx]), regression_metrics(y[idx], pb[idx])
        return mb["src"] - ma["src"], mb["mae"] - ma["mae"]

    point = gains(np.arange(len(y)))
    rng = np.random.default_rng(seed)
    boot = np.array([gains(rng.integers(0, len(y), len(y))) for _ in range(n_boot)])
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {"n": len(y), "d_src": point[0], "d_src_ci": (lo[0], hi[0]), "d_mae": point[1], "d_mae_ci": (lo[1], hi[1])}


def report(results: dict[str, dict], all_variants: dict[str, Variant], workdir: Path, oracle: pl.DataFrame | None) -> str:
    preds = {(v, m): pl.read_parquet(workdir / "results" / f"{v}_{m}.parquet") for v in results for m in MODELS}
    splits = ("val", "test", HIDDEN)
    head = " | ".join(f"{s if s != HIDDEN else 'test files'} {k}" for s in splits for k in ("SRC", "MAE"))
    rows = [f"| variant | mode | model | {head} | run s |", "|---|---|---|" + "---|" * (2 * len(splits) + 1)]
    for v, r in results.items():
        for m in MODELS:
            cells = []
            for s in splits:
                part = scored(preds[v, m], s, oracle)
                met = regression_metrics(part["label"].to_numpy(), part["pred"].to_numpy())
                cells += [f"{met['src']:.4f}", f"{met['mae']:.4f}"] if met["n"] else ["-", "-"]
            rows.append(f"| {v} | {all_variants[v].mode} | {m} | {' | '.join(cells)} | {r['seconds']:.0f} |")
    rows += ["", "Gains over the baseline variant (paired bootstrap over the scored posts, 1000 draws, 95% CI; "
             "dMAE < 0 is better):", "",
             "| variant | vs | model | posts | n | dSRC | dSRC 95% CI | dMAE | dMAE 95% CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in results:
        b = all_variants[v].baseline
        if b is None or b not in results:
            continue
        for s in ("test", HIDDEN):
            for m in MODELS:
                pa_, pb = scored(preds[b, m], s, oracle), scored(preds[v, m], s, oracle)
                if pa_.height == 0:
                    continue
                g = paired_gain(pa_, pb)
                rows.append(f"| {v} | {b} | {m} | {s if s != HIDDEN else 'test files'} | {g['n']} | {g['d_src']:+.4f} | "
                            f"[{g['d_src_ci'][0]:+.4f}, {g['d_src_ci'][1]:+.4f}] | {g['d_mae']:+.4f} | "
                            f"[{g['d_mae_ci'][0]:+.4f}, {g['d_mae_ci'][1]:+.4f}] |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smpd-dir", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, required=True, help="runs go to WORKDIR/work, results to WORKDIR/results")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--threads", type=int, default=None, help="every GBDT fit's thread count (default: the params')")
    ap.add_argument("--variants", default=",".join(variants()), help="comma-separated, run in this order")
    ap.add_argument("--out", type=Path, default=None, help="also write the tables (markdown) here")
    args = ap.parse_args(argv)
    all_variants = variants()
    chosen = args.variants.split(",")
    unknown = set(chosen) - set(all_variants)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(all_variants)}")
    base = load_params(args.params)
    if args.threads is not None:
        base = merge_params(base, thread_overrides(args.threads))
    smpd = args.smpd_dir.resolve()
    results = {}
    for name in chosen:
        results[name] = run_variant(name, all_variants[name], base, smpd, args.workdir)
        print(f"{name}: {results[name]['seconds']:.0f} s, stages run: {', '.join(results[name]['ran'])}", flush=True)
    oracle_path = Paths(root=args.workdir / "work", smpd=smpd).oracle
    oracle = pl.read_parquet(oracle_path) if oracle_path.is_file() else None
    threads = f", --threads {args.threads}" if args.threads is not None else ""
    text = (f"{date.today().isoformat()}, CPU: {cpu_model()}, params {args.params}{threads}\n\n"
            + report(results, all_variants, args.workdir, oracle))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
