"""Stacked ensemble at SMPD scale: 305,613 training posts x ~1,000 features -- time and peak memory.

Synthetic float32 features (a few informative columns, 5% missing values, ``--categorical``
integer code columns used natively by the GBDTs), post dates over 16 months, plus a val set of
10% as many posts that early-stops the refits. Each base learner is run as the stack runs it
(``--folds`` expanding-window out-of-fold fits + one refit on all rows), one learner at a time
so that its time is its own; then the non-negative linear meta-learner on the OOF columns.
Peak resident memory is the process maximum (``ru_maxrss``), read after each learner.

Tree counts are fixed (``--trees``, no early stopping in the fold fits' budget beyond it) so
the time is a budget you can scale: GBDT time is close to linear in trees.

    python -m benchmarks.bench_stack_scale [--n 305613] [--features 1000] [--trees 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from models.learners import create_learner
from models.metrics import regression_metrics
from models.meta_learners import NonNegativeLinearStack
from models.stacking import StackedEnsemble

MONTH_S = 30.44 * 86_400


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def make_data(n: int, d: int, n_cat: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (n, d) float32 with NaNs, y (n,), postdate (n,) sorted; the first n_cat columns are codes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X[:, :n_cat] = rng.integers(0, 50, (n, n_cat)).astype(np.float32)
    effect = rng.standard_normal((n_cat, 50)) * 0.3
    y = 6.4 + X[:, n_cat:n_cat + 20] @ rng.uniform(-0.4, 0.4, 20) + np.tanh(X[:, n_cat + 20]) * X[:, n_cat + 21]
    y += sum(effect[j, X[:, j].astype(int)] for j in range(n_cat)) + rng.standard_normal(n)
    X[rng.random((n, d), dtype=np.float32) < 0.05] = np.nan
    X[:, :n_cat] = np.nan_to_num(X[:, :n_cat], nan=0.0)
    postdate = np.sort(1_420_070_400 + rng.integers(0, int(16 * MONTH_S), n))
    return X, y.astype(np.float64), postdate.astype(np.float64)


def learner_params(name: str, trees: int, threads: int, epochs: int) -> dict:
    return {"lgbm": {"n_estimators": trees, "learning_rate": 0.1, "num_leaves": 63, "num_threads": threads},
            "catboost": {"n_estimators": trees, "learning_rate": 0.1, "depth": 6, "thread_count": threads},
            "xgboost": {"n_estimators": trees, "learning_rate": 0.1, "max_depth": 6, "nthread": threads},
            "mlp": {"hidden_layer_sizes": (128, 64), "max_epochs": epochs, "patience": epochs}}[name]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=305_613, help="training posts (SMPD train: 305,613)")
    ap.add_argument("--features", type=int, default=1000)
    ap.add_argument("--categorical", type=int, default=8)
    ap.add_argument("--trees", type=int, default=200, help="trees per GBDT fit (fold and refit)")
    ap.add_argument("--mlp-epochs", type=int, default=5)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--learners", default="lgbm,catboost,xgboost,mlp")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    X, y, postdate = make_data(args.n + args.n // 10, args.features, args.categorical, args.seed)
    n = args.n
    X_tr, y_tr, t_tr, X_va, y_va = X[:n], y[:n], postdate[:n], X[n:], y[n:]
    print(f"data: {n:,} train + {len(y_va):,} val posts x {args.features} features "
          f"({X.nbytes / 2**30:.2f} GiB float32) in {time.perf_counter() - t0:.1f} s; peak {peak_gib():.2f} GiB",
          flush=True)
    cats = tuple(range(args.categorical))
    print("| learner | OOF folds + refit s | val SRC | val MAE | peak RSS GiB (process, so far) |")
    print("|---|---|---|---|---|")
    oof, val_preds, total = [], [], 0.0
    for name in args.learners.split(","):
        ens = StackedEnsemble({name: lambda name=name: create_learner(
            name, learner_params(name, args.trees, args.threads, args.mlp_epochs), cats)},
            n_folds=args.folds, es_fraction=0.1, seed=args.seed)
        t0 = time.perf_counter()
        ens.fit(X_tr, y_tr, t_tr, X_va, y_va)
        seconds = time.perf_counter() - t0
        total += seconds
        oof.append(ens.oof_[:, 0])
        val_preds.append(ens.predict_base(X_va)[name])
        m = regression_metrics(y_va, val_preds[-1])
        print(f"| {name} | {seconds:.0f} | {m['src']:.4f} | {m['mae']:.4f} | {peak_gib():.2f} |", flush=True)
    P = np.column_stack(oof)
    keep = np.isfinite(P).all(axis=1)
    meta = NonNegativeLinearStack().fit(P[keep], y_tr[keep])
    m = regression_metrics(y_va, meta.predict(np.column_stack(val_preds)))
    print(f"| **stack** (NNLS on OOF) | {total:.0f} total | {m['src']:.4f} | {m['mae']:.4f} | {peak_gib():.2f} |")
    print("weights:", {k: round(float(w), 3) for k, w in zip(args.learners.split(','), meta.weights_)})


if __name__ == "__main__":
    main()
