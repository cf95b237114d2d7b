"""Feature-group ablation on a built work root (default: the `dvc repro` workspace).

Fits the LightGBM of params.yaml (early-stopped on val) on: the baseline group alone, the
baseline plus each other group, and all groups; prints validation and test SRC/MAE with the
oracle's SRC on the simulated set beside them, as a markdown table.

    python -m benchmarks.bench_ablation [--root .] [--params params.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from featurestore.config import config_from_dict, load_params
from featurestore.feature_groups import list_groups
from models.evaluation import oracle_metrics, split_metrics
from models.train_gbdt import TrainConfig, assemble, fit_predict
from featurestore.paths import Paths


def ablation_sets(available: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    base = "features_baseline"
    others = [t for t in available if t != base]
    sets = [("baseline", (base,))] + [(f"baseline + {t.removeprefix('features_')}", (base, t)) for t in others]
    return sets + [("all groups", (base, *others))]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--smpd-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    paths = Paths(root=args.root, smpd=args.smpd_dir)
    params = load_params(args.params)
    available = [g.table for g in list_groups() if paths.table(g.table).is_file()]
    split, labels = pl.read_parquet(paths.table("split")), pl.read_parquet(paths.table("labels"))
    oracle = pl.read_parquet(paths.oracle) if paths.oracle.is_file() else None
    print("| features | n features | val SRC | val MAE | test SRC | test MAE | oracle val SRC | oracle test SRC "
          "| test SRC / oracle | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, groups in ablation_sets(available):
        cfg = config_from_dict(TrainConfig, "train_lgbm", {**params.get("train_lgbm", {}), "feature_groups": list(groups)})
        frame, names = assemble([pl.read_parquet(paths.table(g)) for g in groups], split, labels)
        t0 = time.perf_counter()
        preds, _, _ = fit_predict(frame, names, cfg)
        fit_s = time.perf_counter() - t0
        m = split_metrics(preds)
        o = oracle_metrics(preds, oracle) if oracle is not None else None
        ov, ot = (o["val"]["oracle"]["src"], o["test"]["oracle"]["src"]) if o else (float("nan"), float("nan"))
        print(f"| {label} | {len(names)} | {m['val']['src']:.4f} | {m['val']['mae']:.4f} | {m['test']['src']:.4f} | "
              f"{m['test']['mae']:.4f} | {ov:.4f} | {ot:.4f} | {m['test']['src'] / ot:.3f} | {fit_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
