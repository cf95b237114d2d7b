"""Time-safe neighbour search and single-query latency at SMPD scale (486,194 posts).

Data: ``--n`` random L2-normalised float32 vectors of ``--dim`` (``--data clustered``: a mixture
of Gaussian clusters, closer to real embeddings), post dates uniform over ``--months`` months.

Part 1, k nearest strictly-earlier posts for every post (``featurestore.retrieval.time_safe_neighbours``):
  exact   numpy/BLAS blocked GEMM, exact  -- timed on ``--exact-sample`` posts, extrapolated x (N/n)^2
  flat    faiss IndexFlatIP filled in time order, exact -- same subsample, extrapolated
  ivfflat / ivfpq / hnsw  faiss indexes filled in time order, approximate -- all N posts;
          recall@k against exact on ``--recall-queries`` posts
  numpy brute force (baseline): one query at a time, ``E[:earlier] @ q`` + argpartition, on
          ``--baseline-queries`` random posts of the full set, extrapolated x N / queries
Part 2, one query after loading a persisted index (what ``smpp similar`` does), p50/p95 latency.

    python -m benchmarks.bench_retrieval [--n 486194] [--dim 512] [--threads 2] [--kinds ivfflat,ivfpq,hnsw]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from featurestore.retrieval import IndexConfig, build_index, load_index, save_index, search_before, time_safe_neighbours

MONTH_S = 30.44 * 86_400


def make_data(n: int, dim: int, months: float, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``emb (n, dim) float32`` unit rows and ``postdate (n,) int64`` epoch seconds."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    if kind == "clustered":  # 2,000 topics; a post = its topic centre + noise of similar size
        centres = rng.standard_normal((2000, dim), dtype=np.float32)
        emb = emb * 0.8 + centres[rng.integers(0, 2000, n)]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    postdate = 1_420_070_400 + rng.integers(0, int(months * MONTH_S), n)
    return emb, postdate.astype(np.int64)


def time_sorted(emb: np.ndarray, postdate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``order (N,)``, ``E (N, D)`` and ``t (N,)`` in post-date order."""
    order = np.argsort(postdate, kind="stable")
    return order, emb[order], postdate[order]


def exact_for(srt: tuple, emb: np.ndarray, postdate: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Reference ids (len(rows), k): one query at a time, ``E[:earlier] @ q`` + argpartition (no copy of E)."""
    order, E, t = srt
    out = np.full((len(rows), k), -1, np.int64)
    for j, r in enumerate(rows):
        s = E[:np.searchsorted(t, postdate[r], "left")] @ emb[r]  # (earlier,) similarities
        top = np.argpartition(-s, k)[:k] if len(s) > k else np.arange(len(s))
        out[j, :len(top)] = order[top[np.argsort(-s[top])]]
    return out


def recall(got: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a[a >= 0]) & set(b[b >= 0])) / max((b >= 0).sum(), 1) for a, b in zip(got, truth)]
    return float(np.mean(hits))


def baseline_seconds(srt, emb: np.ndarray, postdate: np.ndarray, k: int, n_queries: int, seed: int) -> float:
    """Per-query numpy brute force on random queries; extrapolated to every post."""
    rows = np.random.default_rng(seed).choice(len(emb), n_queries, replace=False)
    t0 = time.perf_counter()
    exact_for(srt, emb, postdate, rows, k)
    return (time.perf_counter() - t0) * len(emb) / n_queries


def timed_neighbours(emb, postdate, k, method, cfg, block):
    t0 = time.perf_counter()
    ids, _ = time_safe_neighbours(emb, postdate, k, block, method=method, config=cfg)
    return time.perf_counter() - t0, ids


def part1(args, emb, postdate, cfg) -> list[dict]:
    n, k = len(emb), args.k
    rows = []
    sub = np.sort(np.random.default_rng(args.seed).choice(n, min(args.exact_sample, n), replace=False))
    scale = (n / len(sub)) ** 2
    for method in ("exact", "flat"):
        if method in args.methods:
            sec, _ = timed_neighbours(emb[sub], postdate[sub], k, method, cfg, args.block)
            rows.append({"method": f"`{method}` (exact)", "time": sec * scale, "note":
                         f"measured {sec:.1f} s on {len(sub):,} posts, x (N/n)^2 = {scale:.1f}", "recall": 1.0})
            print(f"  {method}: {sec:.1f} s on {len(sub):,}", file=sys.stderr, flush=True)
    srt = time_sorted(emb, postdate)
    sec = baseline_seconds(srt, emb, postdate, k, args.baseline_queries, args.seed)
    rows.append({"method": "numpy brute force, one query at a time (baseline)", "time": sec, "recall": 1.0,
                 "note": f"{args.baseline_queries} random queries on all N, x N / queries"})
    print(f"  baseline: {sec:.1f} s", file=sys.stderr, flush=True)
    q = np.random.default_rng(args.seed + 1).choice(n, args.recall_queries, replace=False)
    truth = exact_for(srt, emb, postdate, q, k) if args.approx else None
    del srt
    for kind in args.approx:
        sec, ids = timed_neighbours(emb, postdate, k, kind, cfg, args.block)
        rows.append({"method": f"`{kind}` (approximate)", "time": sec, "recall": recall(ids[q], truth),
                     "note": f"all N; {_params(kind, cfg, n)}"})
        print(f"  {kind}: {sec:.1f} s", file=sys.stderr, flush=True)
    return rows


def _params(kind: str, cfg: IndexConfig, n: int) -> str:
    if kind == "hnsw":
        return f"M={cfg.hnsw_m}, efConstruction={cfg.ef_construction}, efSearch={cfg.ef_search}"
    extra = f", PQ{cfg.pq_m}x{cfg.pq_bits}" if kind == "ivfpq" else ""
    nlist = min(cfg.nlist or int(4 * np.sqrt(n)), min(cfg.train_size, n) // 39)
    return f"nlist={nlist}, nprobe={cfg.nprobe}, k-means on {min(cfg.train_size, n):,}{extra}"


def _percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def part2(args, emb, postdate, cfg) -> list[dict]:
    """Single-query latency after loading persisted indexes, vs numpy brute force."""
    order = np.lexsort((np.arange(len(emb)), postdate))
    E, t = emb[order], postdate[order]
    queries = np.random.default_rng(args.seed + 2).choice(len(E), args.latency_queries, replace=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.latency_kinds:
            c = replace(cfg, kind=kind)
            t0 = time.perf_counter()
            path = save_index(build_index(E, kind, config=c), Path(tmp) / f"{kind}.faiss", order, t, "bench", c)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            loaded = load_index(path, "bench")
            load = time.perf_counter() - t0
            for before in (False, True):
                times = []
                for r in queries:
                    t0 = time.perf_counter()
                    search_before(loaded.index, E[r:r + 1], 11, int(np.searchsorted(t, t[r])) if before else None)
                    times.append(time.perf_counter() - t0)
                p50, p95 = _percentiles(times)
                rows.append({"method": f"`{kind}` index" + (" + IDSelectorRange (before only)" if before else ""),
                             "p50": p50, "p95": p95, "note": f"build+save {build:.1f} s, load {load:.1f} s"})
            del loaded
    times = []
    for r in queries:
        t0 = time.perf_counter()
        s = E @ E[r]
        top = np.argpartition(-s, 11)[:11]
        top[np.argsort(-s[top])]
        times.append(time.perf_counter() - t0)
    p50, p95 = _percentiles(times)
    rows.append({"method": "numpy brute force `E @ q` + argpartition (baseline)", "p50": p50, "p95": p95, "note": ""})
    return rows


def report(args, rows1, rows2, threads: str) -> str:
    cmd = "python -m benchmarks.bench_retrieval " + " ".join(sys.argv[1:])
    lines = [f"`{cmd}`", "",
             f"N = {args.n:,} {args.data} unit vectors, D = {args.dim}, k = {args.k}, post dates over "
             f"{args.months:g} months; {threads}", "",
             "| time-safe k-NN for every post | time (s) | recall@k | how measured |", "|---|---|---|---|"]
    for r in rows1:
        lines.append(f"| {r['method']} | {r['time']:.1f} | {r['recall']:.3f} | {r['note']} |")
    lines += ["", "| one query after load (k = 10) | p50 (ms) | p95 (ms) | notes |", "|---|---|---|---|"]
    for r in rows2:
        lines.append(f"| {r['method']} | {r['p50']:.2f} | {r['p95']:.2f} | {r['note']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=486_194)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--months", type=float, default=16)
    p.add_argument("--data", choices=("random", "clustered"), default="random")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--block", type=int, default=4096)
    p.add_argument("--exact-sample", type=int, default=60_000, help="posts the exact methods are timed on")
    p.add_argument("--methods", default="exact,flat", help="exact methods to time on the subsample")
    p.add_argument("--kinds", default="ivfflat,ivfpq", help="approximate kinds run on all N (hnsw is slow to build)")
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--train-size", type=int, default=65_536, help="IVF k-means sample")
    p.add_argument("--baseline-queries", type=int, default=200)
    p.add_argument("--recall-queries", type=int, default=300)
    p.add_argument("--latency-kinds", default="flat,ivfflat")
    p.add_argument("--latency-queries", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the markdown here")
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.approx = [m for m in args.kinds.split(",") if m]
    args.latency_kinds = [m for m in args.latency_kinds.split(",") if m]
    faiss.omp_set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        blas = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())
        threads = (f"threads: faiss OpenMP {faiss.omp_get_max_threads()}, BLAS {blas}; {os.cpu_count()} CPUs, "
                   f"load average before start {os.getloadavg()[0]:.1f}; faiss {faiss.__version__}")
        emb, postdate = make_data(args.n, args.dim, args.months, args.data, args.seed)
        cfg = IndexConfig(nprobe=args.nprobe, train_size=args.train_size, use_gpu=False)
        rows1 = part1(args, emb, postdate, cfg)
        rows2 = part2(args, emb, postdate, cfg)
    text = report(args, rows1, rows2, threads)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
