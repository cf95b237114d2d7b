"""Which base learners earn their place in the stack? Each candidate fitted once, every combination scored.

On the run's stored tables (after `dvc repro`), every candidate learner is fitted exactly as
`train_stack` fits it (time-respecting out-of-fold predictions over the train split + one refit
early-stopped on val, with its own feature groups), one at a time in a fresh process, so its
time and peak memory (the process's ``ru_maxrss``, its data included) are its own. Its OOF
and refit predictions are cached under ``--cache`` (a rerun with the same candidate
definition reuses them). Then the non-negative linear meta-learner is fitted on the OOF
columns of each requested combination (OOF only: val and test labels never reach it) and
the combination is scored on val and test, with SRC / the oracle's SRC.

    python -m benchmarks.bench_stack_learners                      # default candidates, default combos
    python -m benchmarks.bench_stack_learners --candidates lgbm,catboost_ids,ppcl --combos "lgbm+ppcl"

Candidates (``candidates()``): the params.yaml learners with their params.yaml settings, plus
``catboost_ids`` (CatBoost with the user-id code as a native categorical), ``sequence`` (the DSN
head) and ``ppcl`` (PPCL over frozen MiniLM + image statistics + user features + user id).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

from featurestore.config import config_from_dict, load_params
from models.learners import create_learner
from models.metrics import regression_metrics
from models.meta_learners import NonNegativeLinearStack
from models.stacking import StackedEnsemble
from models.train_gbdt import CATEGORICAL_SUFFIX
from models.train_stack import StackConfig
from pipelines.model_inputs import load_inputs
from featurestore.paths import Paths

log = logging.getLogger(__name__)

PPCL_GROUPS = ["features_baseline", "features_user", "features_crawled", "features_image_stats", "features_ids",
               "embed_minilm"]


def candidates(cfg: StackConfig) -> dict[str, dict]:
    """name -> {learner, params, groups}: the configured learners and the extra candidates."""
    base = list(cfg.feature_groups)
    out = {n: {"learner": n, "params": cfg.learner_params.get(n, {}),
               "groups": list(cfg.learner_feature_groups.get(n, base))} for n in cfg.learners}
    out.setdefault("catboost", {"learner": "catboost", "params": cfg.learner_params.get("catboost", {}),
                                "groups": base})
    out["catboost_ids"] = {**out["catboost"], "groups": [*base, "features_ids"]}
    out.setdefault("sequence", {"learner": "sequence", "params": {"max_epochs": 40, "patience": 6, "seed": 42},
                                "groups": base})
    out.setdefault("ppcl", {"learner": "ppcl", "params": {"max_epochs": 12, "patience": 3, "seed": 42,
                                                          "num_threads": 2}, "groups": PPCL_GROUPS})
    return out


def fit_candidate(name: str, spec: dict, root: str, cfg: StackConfig) -> dict:
    """OOF predictions on train rows, refit predictions on every row, fit seconds, and peak RSS.

    Meant to run in a fresh process (``run_isolated``): it loads only this candidate's groups, so
    ``peak_gib`` (the process maximum) is the learner's own, its data included.
    """
    frame, cols, _, postdate = load_inputs(Paths(root=Path(root)), tuple(spec["groups"]))
    X = frame.select(cols).to_numpy().astype(np.float32)
    y, split = frame["label"].to_numpy(), frame["split"].to_numpy()
    tr, va = split == "train", split == "val"
    cats = tuple(i for i, n in enumerate(cols) if n.endswith(CATEGORICAL_SUFFIX))
    make = lambda: create_learner(spec["learner"], spec["params"], cats, tuple(cols))  # noqa: E731
    ens = StackedEnsemble({name: make}, n_folds=cfg.n_folds, scheme=cfg.scheme, gap=cfg.gap_days * 86400.0,
                          es_fraction=cfg.es_fraction, seed=cfg.seed)
    t0 = time.perf_counter()
    ens.fit(X[tr], y[tr], postdate[tr], X[va], y[va])
    seconds = time.perf_counter() - t0
    return {"oof": ens.oof_[:, 0], "pred": ens.predict_base(X)[name], "seconds": seconds, "n_features": len(cols),
            "best_iteration": getattr(ens.base_models_[name], "best_iteration_", None),
            "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def run_isolated(name: str, spec: dict, root: Path, cfg: StackConfig) -> dict:
    """``fit_candidate`` in a fresh spawned process (its own peak memory, nothing shared)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fit_candidate, name, spec, str(root), cfg).result()


def spec_key(name: str, spec: dict, cfg: StackConfig) -> str:
    text = json.dumps(["v2", name, spec, cfg.n_folds, cfg.scheme, cfg.gap_days, cfg.es_fraction, cfg.seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def score(y: np.ndarray, p: np.ndarray, oracle_src: float | None) -> dict:
    m = regression_metrics(y, p)
    return {**m, "oracle_ratio": m["src"] / oracle_src if oracle_src else None}


def combination(fits: dict[str, dict], members: list[str], y: np.ndarray, tr: np.ndarray) -> tuple[np.ndarray, dict]:
    """NNLS on the members' OOF columns (train rows where all have one) -> predictions for all rows, weights."""
    P_oof = np.column_stack([fits[m]["oof"] for m in members])
    ok = np.isfinite(P_oof).all(axis=1)
    meta = NonNegativeLinearStack().fit(P_oof[ok], y[tr][ok])
    pred = meta.predict(np.column_stack([fits[m]["pred"] for m in members]))
    return pred, dict(zip(members, map(float, meta.weights_)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--candidates", default="lgbm,catboost,catboost_ids,xgboost,mlp,sequence,ppcl")
    ap.add_argument("--combos", default="lgbm+catboost+xgboost+mlp;lgbm+catboost_ids+xgboost+mlp;"
                                        "lgbm+catboost+xgboost+mlp+sequence;lgbm+catboost+xgboost+mlp+ppcl;"
                                        "lgbm+catboost_ids+xgboost+mlp+sequence+ppcl",
                    help="';'-separated combinations of '+'-joined candidate names")
    ap.add_argument("--cache", type=Path, default=Path("data/bench/stack_learners"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/stack_learners.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cfg = config_from_dict(StackConfig, "train_stack", load_params(args.params).get("train_stack"))
    specs = candidates(cfg)
    wanted = args.candidates.split(",")
    unknown = sorted(set(wanted) - set(specs))
    if unknown:
        raise SystemExit(f"unknown candidate(s) {unknown}; known: {sorted(specs)}")
    paths = Paths(root=args.root)
    frame = load_inputs(paths, tuple(specs[wanted[0]]["groups"][:1]))[0]  # pid order, split, label (as every fit)
    y, split = frame["label"].to_numpy(), frame["split"].to_numpy()
    tr = split == "train"
    fits: dict[str, dict] = {}
    args.cache.mkdir(parents=True, exist_ok=True)
    for n in wanted:
        f = args.cache / f"{n}-{spec_key(n, specs[n], cfg)}.npz"
        if f.is_file():
            d = np.load(f)
            fits[n] = {"oof": d["oof"], "pred": d["pred"], "seconds": float(d["seconds"]),
                       "peak_gib": float(d["peak_gib"]),
                       "n_features": int(d["n_features"]), "best_iteration": d["best_iteration"].item()}
            log.info("%s: cached (%s)", n, f)
            continue
        log.info("%s: fitting (%s on %d groups)", n, specs[n]["learner"], len(specs[n]["groups"]))
        fits[n] = run_isolated(n, specs[n], args.root, cfg)
        np.savez(f, **{k: np.asarray(v if v is not None else -1) for k, v in fits[n].items()})
        log.info("%s: %.0f s", n, fits[n]["seconds"])
    o_src = {}
    if paths.oracle.is_file():  # simulated data: the noise-free expected label's SRC, as in evaluate
        o = frame.select("pid", "split", "label").join(pl.read_parquet(paths.oracle).select("pid", "expected_label"),
                                                       on="pid", how="left")
        for s in ("val", "test"):
            part = o.filter(pl.col("split") == s)
            o_src[s] = regression_metrics(part["label"].to_numpy(), part["expected_label"].to_numpy())["src"]
    rows = []
    for n in wanted:
        r = {"model": n, "features": fits[n]["n_features"], "fit s": round(fits[n]["seconds"], 1),
             "peak GiB": round(fits[n]["peak_gib"], 2)}
        ok = np.isfinite(fits[n]["oof"])
        r["oof src"] = regression_metrics(y[tr][ok], fits[n]["oof"][ok])["src"]
        for s in ("val", "test"):
            m = split == s
            r |= {f"{s} {k}": v for k, v in score(y[m], fits[n]["pred"][m], o_src.get(s)).items() if k != "n"}
        rows.append(r)
    for combo in [c for c in args.combos.split(";") if c]:
        members = combo.split("+")
        if not set(members) <= set(fits):
            log.warning("combo %s skipped: not every member was fitted", combo)
            continue
        pred, weights = combination(fits, members, y, tr)
        r = {"model": "stack: " + " + ".join(f"{m} {w:.2f}" for m, w in weights.items()), "features": "",
             "fit s": round(sum(fits[m]["seconds"] for m in members), 1), "oof src": None,
             "peak GiB": round(max(fits[m]["peak_gib"] for m in members), 2)}
        for s in ("val", "test"):
            m = split == s
            r |= {f"{s} {k}": v for k, v in score(y[m], pred[m], o_src.get(s)).items() if k != "n"}
        rows.append(r)
    table = pl.DataFrame(rows)
    cols = ["model", "features", "fit s", "peak GiB", "oof src", "val src", "val mae", "val mse", "test src", "test mae",
            "test mse", "test oracle_ratio"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table.iter_rows(named=True):
        lines.append("| " + " | ".join("" if r[c] is None else str(r[c]) if c in ("fit s", "peak GiB")
                                       else f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c])
                                       for c in cols) + " |")
    text = ("# Stack learners: each candidate once, combinations by NNLS on OOF\n\n"
            f"`python -m benchmarks.bench_stack_learners --candidates {args.candidates}` "
            f"(oracle SRC val {o_src.get('val', float('nan')):.4f}, test {o_src.get('test', float('nan')):.4f})\n\n"
            + "\n".join(lines) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
