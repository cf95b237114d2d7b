"""Contrastive regression heads on frozen MiniLM + image-statistics embeddings, on a built work root.

1. MiniLM extraction: the embed_minilm stage (resumes: a no-op when its shards are complete) and a
   fresh CPU throughput measurement on ``--throughput-sample`` texts.
2. Heads: vanilla L1 vs RNC + L1 vs WRCR + L1 (linear weighting, alpha 0.4; ``--variants`` adds
   the log and quadratic weightings), fitted on train, early-stopped on val, over ``--seeds``
   seeds: overall MAE / SRC (mean ± sd) and MAE per label bin on val and test.
3. The same on a curated subset (every post with a label in the train tails -- below the 10th or
   above the 90th percentile -- and ``--middle-fraction`` of the others, in every split).
4. LightGBM (params.yaml train_lgbm, early-stopped on val): validation/test SRC of the existing
   feature groups alone, plus the raw MiniLM embedding, plus fine-tuned embeddings.

    python -m benchmarks.bench_contrastive [--root .] [--params params.yaml] [--seeds 3] [--variants] [--skip-gbdt]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import polars as pl

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from featurestore.config import config_from_dict, load_params  # noqa: E402
from models.metrics import metrics_by_bin, regression_metrics  # noqa: E402

HEADS = {"L1": dict(loss="l1"), "RNC + L1": dict(loss="rnc"), "WRCR + L1": dict(loss="wrcr", weighting="linear")}
VARIANTS = {"WRCR-log + L1": dict(loss="wrcr", weighting="log"),
            "WRCR-quadratic + L1": dict(loss="wrcr", weighting="quadratic")}


def extraction(paths, params: dict, sample: int) -> None:
    import torch

    from models.encoders import create_encoder
    from pipelines import embed_minilm

    summary = embed_minilm.run(paths, params)
    print(f"embed_minilm stage: {summary['rows']} posts, {summary['rows_computed']} computed now "
          f"({summary['rows_per_s']} texts/s), {summary['shards_reused']}/{summary['shards']} shards reused\n")
    enc = create_encoder("minilm", device="cpu")
    rows = enc.read_inputs(paths).slice(0, sample).to_pylist()
    prep = enc.preprocessor()
    texts = sorted((prep(r) for r in rows), key=len)  # the stage's in-shard length order
    print("| MiniLM CPU extraction (fresh sample, fp32, batch 256) | texts | seconds | texts/s |\n|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for a in range(0, len(texts), 256):
                enc.encode(texts[a:a + 256])
        dt = time.perf_counter() - t0
        print(f"| {threads} torch thread(s) | {len(texts)} | {dt:.1f} | {len(texts) / dt:.1f} |")
    print()


def curated(frame: pl.DataFrame, y: np.ndarray, middle_fraction: float, seed: int) -> np.ndarray:
    """Mask: every labelled post in the train-label tails (< q10 or > q90) plus a sample of the middle."""
    train = (frame["split"] == "train").to_numpy() & np.isfinite(y)
    lo, hi = np.quantile(y[train], [0.1, 0.9])
    tail = (y < lo) | (y > hi)
    keep = np.random.default_rng(seed).random(len(y)) < middle_fraction
    return np.isfinite(y) & (tail | keep)


def fit_heads(X, y, split, mask, blocks, heads: dict, args) -> dict[str, list]:
    """Each head fitted once per seed on the masked train rows, early-stopped on the masked val rows."""
    from models.finetune import ContrastiveRegressor

    tr, va = (split == "train") & mask, (split == "val") & mask
    out: dict[str, list] = {name: [] for name in heads}
    for seed in range(args.seed, args.seed + args.seeds):
        for name, kw in heads.items():
            t0 = time.perf_counter()
            est = ContrastiveRegressor(blocks=blocks, max_epochs=args.max_epochs, patience=args.patience, seed=seed,
                                       threads=1, **kw).fit(X[tr], y[tr], X[va], y[va])
            out[name].append((est, time.perf_counter() - t0))
            print(f"  seed {seed} {name}: best epoch {est.best_epoch_} of {len(est.history_)}, "
                  f"{out[name][-1][1]:.0f} s", flush=True)
    return out


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.4f}" + (f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")


def head_tables(heads: dict[str, list], X, y, split, mask, edges: list[float], title: str) -> None:
    """Overall MAE / SRC (mean ± sd over seeds) and the seed-mean MAE per label bin, val and test."""
    preds = {name: [est.predict(X) for est, _ in runs] for name, runs in heads.items()}
    print(f"\n### {title}\n\n| head | split | n | MAE | SRC | best epochs | fit s (mean) |\n"
          "|---|---|---|---|---|---|---|")
    for name, runs in heads.items():
        for s in ("val", "test"):
            m = (split == s) & mask
            r = [regression_metrics(y[m], p[m]) for p in preds[name]]
            print(f"| {name} | {s} | {r[0]['n']} | {_mean_sd([x['mae'] for x in r])} | "
                  f"{_mean_sd([x['src'] for x in r])} | {', '.join(str(e.best_epoch_) for e, _ in runs)} | "
                  f"{np.mean([t for _, t in runs]):.0f} |")
    for s in ("val", "test"):
        m = (split == s) & mask
        bins = {name: [metrics_by_bin(y[m], p[m], edges) for p in ps] for name, ps in preds.items()}
        first = next(iter(bins.values()))[0]
        print(f"\nMAE per label bin, {s} (mean over seeds):\n\n| bin | n | " + " | ".join(bins) + " |\n|---|---|"
              + "---|" * len(bins))
        for i, b in enumerate(first):
            cells = " | ".join("" if runs[0][i]["mae"] is None else f"{np.mean([r[i]['mae'] for r in runs]):.3f}"
                               for runs in bins.values())
            print(f"| {b['bin']} | {b['n']} | {cells} |")


def _columns(prefix: str, pid: np.ndarray, postdate: np.ndarray, values: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"pid": pid, "postdate": postdate,
                         **{f"{prefix}_{i}": values[:, i].astype(np.float32) for i in range(values.shape[1])}})


def gbdt_table(paths, params: dict, frame: pl.DataFrame, extras: dict[str, pl.DataFrame | None]) -> None:
    from models.evaluation import split_metrics
    from models.train_gbdt import TrainConfig, assemble, fit_predict

    cfg = config_from_dict(TrainConfig, "train_lgbm", params.get("train_lgbm"))
    base = [pl.read_parquet(paths.table(g)) for g in cfg.feature_groups]
    split, labels = pl.read_parquet(paths.table("split")), pl.read_parquet(paths.table("labels"))
    print("\n### LightGBM (train_lgbm params, early-stopped on val)\n\n"
          "| features | n features | val SRC | val MAE | test SRC | test MAE | trees | fit s |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, extra in extras.items():
        feats, names = assemble(base + ([extra] if extra is not None else []), split, labels)
        t0 = time.perf_counter()
        preds, model, _ = fit_predict(feats, names, cfg)
        m = split_metrics(preds)
        print(f"| {name} | {len(names)} | {m['val']['src']:.4f} | {m['val']['mae']:.4f} | {m['test']['src']:.4f} | "
              f"{m['test']['mae']:.4f} | {model.best_iteration_} | {time.perf_counter() - t0:.0f} |", flush=True)


def gbdt_variants(paths, frame, X, heads: dict, args) -> dict:
    """Extra feature tables for the GBDT comparison: raw MiniLM, and fine-tuned embeddings."""
    from models.finetune import FinetuneConfig, fit_finetuned

    pid, postdate = frame["pid"].to_numpy(), frame["postdate"].to_numpy()
    extras = {"existing groups": None, "+ raw MiniLM (384)": _columns("minilm", pid, postdate, X[:, :384])}
    for name in ("L1", "WRCR + L1"):
        est = heads[name][0][0]  # the first seed's head
        extras[f"+ ft {name} (64; val-early-stopped head, train rows in-sample)"] = \
            _columns("ft", pid, postdate, est.transform(X))
    for folds in (0, args.crossfit):
        cfg = FinetuneConfig(max_epochs=args.max_epochs, patience=args.patience, seed=args.seed, crossfit_folds=folds)
        t0 = time.perf_counter()
        table = pl.from_arrow(fit_finetuned(paths, cfg)[0])
        label = f"+ finetune_wrcr stage table (train_tail ES{f', {folds}-fold crossfit' if folds else ''})"
        print(f"  {label}: built in {time.perf_counter() - t0:.0f} s", flush=True)
        extras[label] = table
    return extras


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--max-epochs", type=int, default=25)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--middle-fraction", type=float, default=0.2)
    ap.add_argument("--crossfit", type=int, default=4)
    ap.add_argument("--throughput-sample", type=int, default=2048)
    ap.add_argument("--skip-gbdt", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--seeds", type=int, default=3, help="heads are fitted with seeds seed .. seed + seeds - 1")
    ap.add_argument("--variants", action="store_true", help="also the log and quadratic WRCR weightings")
    ap.add_argument("--skip-extraction", action="store_true")
    args = ap.parse_args(argv)
    from models.finetune import FinetuneConfig, finetune_inputs
    from featurestore.paths import Paths

    t_start = time.perf_counter()
    paths, params = Paths(root=args.root), load_params(args.params)
    if not args.skip_extraction:
        extraction(paths, params, args.throughput_sample)
    frame, X, blocks = finetune_inputs(paths, FinetuneConfig())
    y = frame["label"].fill_null(np.nan).to_numpy().astype(np.float64)
    split = frame["split"].to_numpy()
    edges = list(params.get("evaluate", {}).get("label_bins", [1, 3, 5, 7, 9, 11, 13, 17]))
    everything = np.isfinite(y)
    print(f"inputs: {len(y)} posts, blocks {blocks}; train {int(((split == 'train') & everything).sum())}", flush=True)
    kinds = {**HEADS, **(VARIANTS if args.variants else {})}
    heads = fit_heads(X, y, split, everything, blocks, kinds, args)
    head_tables(heads, X, y, split, everything, edges, "Heads on the full set")
    subset = curated(frame, y, args.middle_fraction, args.seed)
    print(f"\ncurated subset: {int(subset.sum())} labelled posts (tails + {args.middle_fraction:.0%} of the middle)")
    sub_heads = fit_heads(X, y, split, subset, blocks, kinds, args)
    head_tables(sub_heads, X, y, split, subset, edges, "Heads on the curated imbalanced subset")
    if not args.skip_gbdt:
        gbdt_table(paths, params, frame, gbdt_variants(paths, frame, X, heads, args))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
