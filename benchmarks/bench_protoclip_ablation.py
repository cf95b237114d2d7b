"""Prototype-CLIP head ablation on a built work root: prototypes and sample selection, and the
penultimate features in LightGBM.

(a) ``ProtoClipRegressor`` (MiniLM 384-d text + ``img_*`` image statistics, proxy class
    ``base_cat_subcategory_code``) fitted on the labelled train posts and early-stopped on val,
    with / without class prototypes x with / without the keep-lowest-loss-77% selection:
    val / test SRC and MAE (mean over ``--seeds`` seeds).
(b) LightGBM (``models.gbdt.LightGBMRegressor`` with the params.yaml ``train_lgbm`` values,
    early-stopped on val) on baseline + image_stats + text + history (joined on pid), without and
    with the ``pclip_*`` penultimate features of the heads of (a) trained on all rows (first
    seed), and with the default head's features whose train rows are K-fold cross-fitted
    (``--crossfit K``, default 4; ``ProtoClipFeaturesConfig.crossfit_folds``).

    python -m benchmarks.bench_protoclip_ablation [--root .] [--seeds 1] [--crossfit 4] \\
        [--out benchmarks/results/protoclip_ablation.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # LightGBM on a shared 2-core box

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from featurestore.config import config_from_dict, load_params  # noqa: E402
from models.metrics import regression_metrics  # noqa: E402
from models.protoclip import ProtoClipRegressor  # noqa: E402
from models.protoclip.table import ProtoClipFeaturesConfig, fit_protoclip, protoclip_inputs  # noqa: E402
from models.train_gbdt import CATEGORICAL_SUFFIX, TrainConfig, assemble  # noqa: E402

GBDT_TABLES = ("baseline", "image_stats", "text", "history")
VARIANTS = {"prototypes, all rows": dict(use_prototypes=True, sample_selection=False),
            "prototypes, lowest-loss 77%": dict(use_prototypes=True, sample_selection=True),
            "no prototypes, all rows": dict(use_prototypes=False, sample_selection=False),
            "no prototypes, lowest-loss 77%": dict(use_prototypes=False, sample_selection=True)}


def head_table(root: Path, args) -> tuple[list[str], dict]:
    """Markdown rows of part (a); the fitted default-config heads of the first seed by variant."""
    frame, X, names = protoclip_inputs(root)
    y = frame["label"].fill_null(np.nan).to_numpy().astype(np.float64)
    split = frame["split"].to_numpy()
    mask = {s: (split == s) & np.isfinite(y) for s in ("train", "val", "test")}
    rows, fitted = [], {}
    for name, kw in VARIANTS.items():
        res, epochs, secs = [], [], []
        for seed in range(args.seed, args.seed + args.seeds):
            t0 = time.perf_counter()
            est = ProtoClipRegressor.from_feature_names(names, seed=seed, num_threads=args.threads, **kw)
            est.fit(X[mask["train"]], y[mask["train"]], X[mask["val"]], y[mask["val"]])
            secs.append(time.perf_counter() - t0)
            pred = est.predict(X)
            res.append({s: regression_metrics(y[mask[s]], pred[mask[s]]) for s in ("val", "test")})
            epochs.append(f"{est.best_iteration_}/{len(est.history_)}")
            fitted.setdefault(name, (est, X, frame))

        def mean(s, k):
            return f"{np.mean([r[s][k] for r in res]):.4f}"
        rows.append(f"| {name} | {mean('val', 'src')} | {mean('val', 'mae')} | {mean('test', 'src')} | "
                    f"{mean('test', 'mae')} | {', '.join(epochs)} | {np.mean(secs):.0f} |")
        print(rows[-1], flush=True)
    return rows, fitted


def pclip_frame(est: ProtoClipRegressor, X: np.ndarray, frame: pl.DataFrame) -> pl.DataFrame:
    z = est.transform(X)  # (N, P)
    return pl.DataFrame({"pid": frame["pid"], **{f"pclip_{i}": z[:, i] for i in range(z.shape[1])}})


def gbdt_rows(root: Path, extras: dict[str, pl.DataFrame | None], args) -> list[str]:
    """Markdown rows of part (b): LightGBM (train_lgbm params) per feature set."""
    cfg = config_from_dict(TrainConfig, "train_lgbm", load_params(args.params).get("train_lgbm"))
    base = [pl.read_parquet(root / "data/features" / f"{t}.parquet") for t in GBDT_TABLES]
    split, labels = pl.read_parquet(root / "data/split.parquet"), pl.read_parquet(root / "data/tables/labels.parquet")
    out = []
    for name, extra in extras.items():
        frame, names = assemble(base + ([extra] if extra is not None else []), split, labels)
        X = frame.select(names).to_numpy().astype(np.float32)
        y = frame["label"].fill_null(np.nan).to_numpy().astype(np.float64)
        s = frame["split"].to_numpy()
        mask = {k: (s == k) & np.isfinite(y) for k in ("train", "val", "test")}
        cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
        t0 = time.perf_counter()
        model = cfg.estimator(cats).fit(X[mask["train"]], y[mask["train"]], X[mask["val"]], y[mask["val"]])
        m = {k: regression_metrics(y[mask[k]], model.predict(X[mask[k]])) for k in ("val", "test")}
        out.append(f"| {name} | {len(names)} | {m['val']['src']:.4f} | {m['val']['mae']:.4f} | "
                   f"{m['test']['src']:.4f} | {m['test']['mae']:.4f} | {model.best_iteration_} | "
                   f"{time.perf_counter() - t0:.0f} |")
        print(out[-1], flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="built work root (with data/)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"), help="for the train_lgbm section")
    ap.add_argument("--seeds", type=int, default=1, help="head seeds per variant (from --seed)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the head")
    ap.add_argument("--crossfit", type=int, default=4, help="K >= 2: also LightGBM + K-fold cross-fitted pclip_* "
                    "of the default head; 0: skip")
    ap.add_argument("--skip-gbdt", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/protoclip_ablation.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    default = "prototypes, " + ("lowest-loss 77%" if ProtoClipRegressor().sample_selection else "all rows")
    print("| head | val SRC | val MAE | test SRC | test MAE | best/run epochs | fit s |\n|---|---|---|---|---|---|---|")
    rows, fitted = head_table(args.root, args)
    lines = ["# Prototype-CLIP head ablation (models/protoclip)", "",
             f"`python -m benchmarks.bench_protoclip_ablation {' '.join(sys.argv[1:] if argv is None else argv)}`"
             f" (seeds {args.seed}..{args.seed + args.seeds - 1}, {args.threads} torch thread(s)).", "",
             "## (a) The head alone (train fit, val early stopping)", "",
             "| head | val SRC | val MAE | test SRC | test MAE | best/run epochs | fit s |",
             "|---|---|---|---|---|---|---|", *rows, ""]
    if not args.skip_gbdt:
        extras = {"+".join(GBDT_TABLES): None}
        for name in VARIANTS:
            if name == default or name.endswith("all rows"):
                extras[f"+ pclip_* ({name})"] = pclip_frame(*fitted[name])
        if args.crossfit:
            cfg = ProtoClipFeaturesConfig(crossfit_folds=args.crossfit,
                                          estimator=dict(seed=args.seed, num_threads=args.threads))
            extras[f"+ pclip_* ({default}, {args.crossfit}-fold cross-fit)"] = \
                pl.from_arrow(fit_protoclip(args.root, cfg)[0]).drop("postdate")
        print("\n| features | n features | val SRC | val MAE | test SRC | test MAE | trees | fit s |\n"
              "|---|---|---|---|---|---|---|---|")
        lines += ["## (b) LightGBM (train_lgbm params, early-stopped on val)", "",
                  "| features | n features | val SRC | val MAE | test SRC | test MAE | trees | fit s |",
                  "|---|---|---|---|---|---|---|---|", *gbdt_rows(args.root, extras, args), ""]
    lines.append(f"Total {time.perf_counter() - t0:.0f} s.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
