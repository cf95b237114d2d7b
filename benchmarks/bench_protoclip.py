"""Prototype-CLIP head on a built work root: the head alone, and as a feature table for LightGBM.

Inputs (``models.protoclip.table.protoclip_inputs``): image = ``img_*`` of
data/features/image_stats.parquet, text = data/embeddings/minilm.parquet (384-d MiniLM), proxy
class = ``base_cat_subcategory_code`` of data/features/baseline.parquet; the estimator imputes
and standardises every block on train rows only. Split data/split.parquet, labels
data/tables/labels.parquet.

(a) ``ProtoClipRegressor`` fitted on the labelled train posts, early-stopped on val, with and
    without the keep-lowest-loss sample selection: SRC / MAE on val and test.
(b) LightGBM (``models.gbdt.LightGBMRegressor``, early-stopped on val) on baseline + image_stats +
    text + history + crawled (joined on pid) without and with the head's penultimate features
    (``pclip_*`` of the head without sample selection): SRC / MAE on val and test.

    python -m benchmarks.bench_protoclip [--root .] [--max-epochs 8] [--patience 3] [--threads 2] \\
        [--out benchmarks/results/protoclip.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl

from models.gbdt import LightGBMRegressor
from models.metrics import regression_metrics
from models.protoclip.table import ProtoClipFeaturesConfig, fit_protoclip
from models.train_gbdt import CATEGORICAL_SUFFIX, assemble

GBDT_GROUPS = ("baseline", "image_stats", "text", "history", "crawled")


def head_runs(root: Path, args) -> tuple[list[str], pl.DataFrame]:
    """(markdown rows of part (a), the pclip table of the head without sample selection)."""
    rows, table = [], None
    for selection in (False, True):
        est = dict(max_epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size,
                   num_threads=args.threads, seed=args.seed, sample_selection=selection,
                   select_after=min(3, args.max_epochs - 1))
        t0 = time.perf_counter()
        tab, head, info = fit_protoclip(root, ProtoClipFeaturesConfig(estimator=est))
        m = info["head_metrics"]
        rows.append(f"| {'keep lowest-loss 77%' if selection else 'all train rows'} | {m['val']['src']:.4f} | "
                    f"{m['val']['mae']:.4f} | {m['test']['src']:.4f} | {m['test']['mae']:.4f} | "
                    f"{info['best_epoch']}/{info['epochs']} | {time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
        if not selection:
            table = pl.from_arrow(tab)
    return rows, table


def gbdt_runs(root: Path, pclip: pl.DataFrame, args) -> list[str]:
    """Markdown rows of part (b): LightGBM without / with the pclip_* columns."""
    base = [pl.read_parquet(root / "data/features" / f"{g}.parquet") for g in GBDT_GROUPS]
    split, labels = pl.read_parquet(root / "data/split.parquet"), pl.read_parquet(root / "data/tables/labels.parquet")
    out = []
    for name, extra in (("baseline+image_stats+text+history+crawled", []), ("  + pclip_* (penultimate)", [pclip])):
        frame, names = assemble(base + extra, split, labels)
        X = frame.select(names).to_numpy().astype(np.float32)
        y = frame["label"].fill_null(np.nan).to_numpy().astype(np.float64)
        s = frame["split"].to_numpy()
        mask = {k: (s == k) & np.isfinite(y) for k in ("train", "val", "test")}
        cats = tuple(i for i, n in enumerate(names) if n.endswith(CATEGORICAL_SUFFIX))
        t0 = time.perf_counter()
        model = LightGBMRegressor(num_threads=args.threads, seed=args.seed, categorical_features=cats)
        model.fit(X[mask["train"]], y[mask["train"]], X[mask["val"]], y[mask["val"]])
        m = {k: regression_metrics(y[mask[k]], model.predict(X[mask[k]])) for k in ("val", "test")}
        out.append(f"| {name} | {len(names)} | {m['val']['src']:.4f} | {m['val']['mae']:.4f} | {m['test']['src']:.4f} "
                   f"| {m['test']['mae']:.4f} | {model.best_iteration_} | {time.perf_counter() - t0:.0f} |")
        print(out[-1], flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="built work root (with data/)")
    ap.add_argument("--max-epochs", type=int, default=8, help="head epochs at most")
    ap.add_argument("--patience", type=int, default=3, help="head early-stopping patience (epochs)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2, help="torch and LightGBM threads")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/protoclip.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    head_rows, pclip = head_runs(args.root, args)
    gbdt_rows = gbdt_runs(args.root, pclip, args)
    cmd = "python -m benchmarks.bench_protoclip " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    text = "\n".join([
        "# Prototype-CLIP head (models/protoclip)", "", f"Command: `{cmd.strip()}` "
        f"({args.threads} threads, seed {args.seed}, total {time.perf_counter() - t0:.0f} s).", "",
        "Inputs: image = `img_*` statistics (no CLIP weights), text = MiniLM 384-d, proxy class = "
        "`base_cat_subcategory_code`; everything fitted on labelled train posts, early-stopped on val.", "",
        "## (a) The head alone", "",
        "| train rows | val SRC | val MAE | test SRC | test MAE | best/run epochs | s |", "|---|---|---|---|---|---|---|",
        *head_rows, "",
        "## (b) LightGBM with and without the head's penultimate features", "",
        "| features | n | val SRC | val MAE | test SRC | test MAE | trees | s |", "|---|---|---|---|---|---|---|---|",
        *gbdt_rows, "",
        "Caveat: the train rows' `pclip_*` come from a head fitted on those same labels (no cross-fitting; "
        "`crossfit_folds` in `ProtoClipFeaturesConfig` does that at K times the cost).", ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"\nwrote {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
