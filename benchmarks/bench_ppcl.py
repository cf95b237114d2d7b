"""PPCL ablation on a built work root: which contrastive task (CRD, UISD, UID) helps?

Inputs (all produced by ``dvc repro``): text = frozen MiniLM embeddings
(data/embeddings/minilm.parquet), image = ``img_*`` statistics (data/features/image_stats.parquet),
user numeric = ``user_*`` (data/features/user.parquet) + ``crawl_*`` (data/features/crawled.parquet),
category codes from data/features/baseline.parquet, user id from data/tables/posts.parquet, split
from data/split.parquet, labels from data/tables/labels.parquet.

Each variant is a ``PPCLRegressor`` fitted on the train split and early-stopped on val (the same
seed, sampler and epochs for all); val and test SRC (scipy spearmanr), MAE and fit seconds are
reported. Variants: no contrastive task; +CRD; +UISD; +UID; all three (the paper's weights 3/1/0.1).

    python -m benchmarks.bench_ppcl [--root .] [--max-epochs 8] [--patience 3] [--threads 1] \
        [--out benchmarks/results/ppcl_ablation.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import spearmanr

from models.ppcl import PPCLRegressor

CATEGORY = ["base_cat_category_code", "base_cat_subcategory_code", "base_cat_concept_code"]
VARIANTS = {"no contrastive": {}, "+CRD": {"crd": 3.0}, "+UISD": {"uisd": 1.0}, "+UID": {"uid": 0.1},
            "all three": {"crd": 3.0, "uisd": 1.0, "uid": 0.1}}


def load(root: Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """-> (X (n, d) float64, feature names, y (n,) float64 NaN unlabelled, split (n,) str), one row per post."""
    emb = pl.read_parquet(root / "data/embeddings/minilm.parquet", columns=["pid", "embedding"])
    fields = [f"emb_minilm_{i}" for i in range(emb.schema["embedding"].size)]
    text = emb.select("pid", pl.col("embedding").arr.to_struct(fields)).unnest("embedding")
    img = pl.read_parquet(root / "data/features/image_stats.parquet").drop("postdate")
    user = pl.read_parquet(root / "data/features/user.parquet").drop("postdate")
    crawl = pl.read_parquet(root / "data/features/crawled.parquet").drop("postdate")
    cats = pl.read_parquet(root / "data/features/baseline.parquet", columns=["pid", *CATEGORY])
    posts = pl.read_parquet(root / "data/tables/posts.parquet", columns=["pid", "uid"])
    users = posts.select(pl.col("uid").unique().sort()).with_row_index("id_user_code")
    posts = posts.join(users, on="uid").select("pid", pl.col("id_user_code").cast(pl.Float64))
    split = pl.read_parquet(root / "data/split.parquet", columns=["pid", "split"])
    labels = pl.read_parquet(root / "data/tables/labels.parquet")
    df = split
    for t in (text, img, user, crawl, cats, posts):
        df = df.join(t, on="pid", how="left")
    df = df.join(labels, on="pid", how="left").sort("pid")
    names = [c for c in df.columns if c not in ("pid", "split", "label")]
    X = df.select(pl.col(names).cast(pl.Float64)).to_numpy()
    return X, names, df["label"].to_numpy().astype(np.float64), df["split"].to_numpy()


def metrics(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    return float(spearmanr(y, p).statistic), float(np.mean(np.abs(y - p)))


def run(root: Path, max_epochs: int, patience: int, threads: int, seed: int) -> list[dict]:
    X, names, y, split = load(root)
    part = {s: (split == s) & np.isfinite(y) for s in ("train", "val", "test")}
    print(f"rows: {len(X)}, features: {len(names)}; " + ", ".join(f"{s} {m.sum()}" for s, m in part.items()))
    rows = []
    for name, weights in VARIANTS.items():
        est = PPCLRegressor.from_feature_names(names, task_weights=weights, max_epochs=max_epochs, patience=patience,
                                               num_threads=threads, seed=seed)
        t0 = time.perf_counter()
        est.fit(X[part["train"]], y[part["train"]], X[part["val"]], y[part["val"]])
        fit_s = time.perf_counter() - t0
        row = {"variant": name, "epochs": est.best_iteration_, "fit_s": fit_s}
        for s in ("val", "test"):
            row[f"{s}_src"], row[f"{s}_mae"] = metrics(y[part[s]], est.predict(X[part[s]]))
        print(row, flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    head = ("| variant | val SRC | val MAE | test SRC | test MAE | best epoch | fit s |\n"
            "|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['variant']} | {r['val_src']:.4f} | {r['val_mae']:.4f} | {r['test_src']:.4f} | "
                   f"{r['test_mae']:.4f} | {r['epochs']} | {r['fit_s']:.1f} |\n" for r in rows)
    return (f"# PPCL ablation\n\n`python -m benchmarks.bench_ppcl --max-epochs {args.max_epochs} "
            f"--patience {args.patience} --threads {args.threads} --seed {args.seed}` (one seed, CPU).\n\n"
            + head + body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="work root holding data/")
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads; >1 thrashed on a loaded 2-core box")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ppcl_ablation.md"))
    args = ap.parse_args()
    text = markdown(run(args.root, args.max_epochs, args.patience, args.threads, args.seed), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
