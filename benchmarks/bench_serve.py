"""`smpp serve` latency and throughput over real HTTP, from a finished run.

Starts `smpp serve --root W` as a subprocess on a free local port and waits for /health (load
time: process start to healthy; server RSS from /proc/<pid>/status). Then, with an httpx client,
sends ``--n`` single-post requests and ``--n`` ``--batch``-post requests one at a time (latency
p50/p95/p99; each size after ``--warmup`` untimed requests: the first few after load run on cold
caches), and the same again from ``--threads`` concurrent client threads (throughput). The
posts are stored test posts read back from the SMPD files and sent as new ones
(``featurestore.new_posts.stored_records``); their predictions are checked against the
pipeline's stored ones. Prints a Markdown table; writes ``--out`` (JSON).

    python -m benchmarks.bench_serve [--root .] [--n 20] [--batch 100] [--threads 8] [--warmup 5] [--breakdown 30]

``--breakdown``: afterwards, in-process, the median milliseconds of each part of a one-post call.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from benchmarks.machine import cpu_model
from featurestore.new_posts import stored_records
from featurestore.paths import Paths
from pipelines.manifest import open_run

OUT = Path(__file__).resolve().parent / "results" / "serve.json"


def test_posts(paths: Paths, n: int) -> tuple[list[dict], pl.DataFrame]:
    """Records of the first ``n`` posts to predict (as new posts) and their stored predictions: the
    test split of a holdout run (dvc repro; read from the SMPD train files), else the unlabelled
    posts of a submit run (split ``predict``; from the SMPD test files)."""
    preds = pl.read_parquet(paths.table("predictions_stack"))
    split = "test" if (preds["split"] == "test").any() else "predict"
    stored = preds.filter(pl.col("split") == split).sort("pid")[:n]
    pids = [int(p) for p in stored["pid"]]
    records = stored_records(paths.smpd_dir, pids, split="train" if split == "test" else "test")
    return records, stored


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of process ``pid``, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def start_server(root: Path, smpd_dir: Path | None, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """`smpp serve` as a subprocess; returns it once /health answers, with the seconds that took."""
    cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--root", str(root), "--port", str(port)]
    cmd += ["--smpd-dir", str(smpd_dir)] if smpd_dir else []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"smpp serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def post(client: httpx.Client, records: list[dict]) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    resp = client.post("/predict", json=records)
    took = time.perf_counter() - t0
    if resp.status_code != 200:
        raise SystemExit(f"POST /predict: {resp.status_code} {resp.text[:500]}")
    return took, resp.json()["predictions"]


def bodies(records: list[dict], size: int, n: int) -> list[list[dict]]:
    """``n`` request bodies of ``size`` posts each, cycling through ``records``."""
    return [[records[(i * size + j) % len(records)] for j in range(size)] for i in range(n)]


def measure(client: httpx.Client, reqs: list[list[dict]], threads: int, warmup: list[list[dict]]) -> dict:
    """Latencies one request at a time (after the untimed ``warmup`` requests), then throughput with
    ``threads`` concurrent clients."""
    for b in warmup:
        post(client, b)
    seq = [post(client, b)[0] for b in reqs]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        conc = list(pool.map(lambda b: post(client, b)[0], reqs))
    wall = time.perf_counter() - t0
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    return {"posts_per_request": len(reqs[0]), "requests": len(reqs),
            "p50_s": p(seq, 50), "p95_s": p(seq, 95), "p99_s": p(seq, 99), "mean_s": float(np.mean(seq)),
            "concurrent_threads": threads, "concurrent_p50_s": p(conc, 50), "concurrent_p95_s": p(conc, 95),
            "throughput_requests_per_s": len(reqs) / wall, "throughput_posts_per_s": len(reqs) * len(reqs[0]) / wall}


PARTS = {"pipelines.online_features": ("new_post_tables", "kernels_rows", "text_rows", "posts_image_stats"),
         "pipelines.predictor": ("post_warnings", "aligned_matrix")}


def breakdown(root: Path, smpd_dir: Path | None, records: list[dict], repeat: int) -> dict:
    """In-process: median ms per part of a one-post ``Predictor.predict`` (parsing, the SQL groups,
    text, image statistics, the engineered embedding and neighbour search, the model, warnings)."""
    import importlib

    from pipelines.predictor import Predictor

    predictor = Predictor.open(root, smpd_dir)
    spent: dict[str, list[float]] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent.setdefault(name, []).append(time.perf_counter() - t0)
        return wrapper

    for module, names in PARTS.items():
        mod = importlib.import_module(module)
        for name in names:
            setattr(mod, name, timed(name, getattr(mod, name)))
    online = predictor.online
    if online.lookup is not None:
        online.encoder.transform_values = timed("embedding", online.encoder.transform_values)
        online.lookup.rows = timed("neighbours", online.lookup.rows)
    predictor.bundle.predict = timed("model", predictor.bundle.predict)
    totals = []
    for i in range(repeat):
        t0 = time.perf_counter()
        predictor.predict([records[i % len(records)]])
        totals.append(time.perf_counter() - t0)
    ms = {name: round(1000 * float(np.median(v[-repeat:])), 2) for name, v in spent.items()}
    return {"posts": 1, "repeat": repeat, "median_total_ms": round(1000 * float(np.median(totals)), 2),
            "median_ms_per_part": ms}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    ap.add_argument("--smpd-dir", type=Path, default=None, help="its SMPD directory (default: the manifest's)")
    ap.add_argument("--n", type=int, default=20, help="requests per size, sequential and concurrent (default: 20)")
    ap.add_argument("--batch", type=int, default=100, help="posts per batch request (default: 100)")
    ap.add_argument("--threads", type=int, default=8, help="concurrent client threads (default: 8)")
    ap.add_argument("--warmup", type=int, default=5,
                    help="untimed requests of each size before the timed ones (the first few after load run "
                         "cold caches; default: 5)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"results JSON (default: {OUT})")
    ap.add_argument("--breakdown", type=int, default=30,
                    help="one-post calls timed per part in-process after the HTTP runs (0: skip; default 30)")
    args = ap.parse_args(argv)
    run = open_run(args.root, args.smpd_dir, need_smpd=True)
    records, stored = test_posts(Paths(root=args.root, smpd=run.smpd_dir), max(args.batch, args.n))
    port = free_port()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_file = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "serve.log"  # the server's own log, kept on failure
    proc, load_s = start_server(args.root, args.smpd_dir, port, log_file)
    try:
        rss_loaded = rss_mib(proc.pid)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=3600,
                          limits=httpx.Limits(max_connections=args.threads)) as client:
            health = client.get("/health").json()
            first_s, preds = post(client, records[: args.batch])
            diff = float(np.max(np.abs(np.array([r["pred"] for r in preds]) - stored["pred"][: len(preds)].to_numpy())))
            results = [measure(client, bodies(records, size, args.n), args.threads,
                               bodies(records[::-1], size, args.warmup))  # other posts first where there are
                       for size in (1, args.batch)]
        rss_end = rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(),
              "cpus": os.cpu_count(), "root": str(Path(args.root).resolve()), "stored_posts": health["stored_posts"],
              "model_version": health["model_version"], "load_s": load_s, "rss_after_load_mib": rss_loaded["VmRSS"],
              "rss_after_requests_mib": rss_end["VmRSS"], "rss_peak_mib": rss_end["VmHWM"],
              "first_request_s": first_s, "warmup_requests": args.warmup, "max_abs_diff_vs_pipeline": diff,
              "results": results,
              "breakdown": breakdown(args.root, args.smpd_dir, records, args.breakdown) if args.breakdown else None}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"`python -m benchmarks.bench_serve --n {args.n} --batch {args.batch} --threads {args.threads} "
          f"--warmup {args.warmup}` "
          f"({report['stored_posts']} stored posts, {report['cpu']}, {report['cpus']} CPUs, {report['date']})\n")
    print(f"load (process start to healthy) {load_s:.1f} s; RSS after load {rss_loaded['VmRSS']:.0f} MiB, after the "
          f"requests {rss_end['VmRSS']:.0f} MiB (peak {rss_end['VmHWM']:.0f}); first {args.batch}-post request "
          f"{first_s:.2f} s; max abs diff vs the pipeline {diff:.1e}\n")
    print(f"| posts / request | requests | p50 ms | p95 ms | p99 ms | {args.threads} threads: req/s | posts/s "
          "| p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['posts_per_request']} | {r['requests']} | {1000 * r['p50_s']:.1f} | {1000 * r['p95_s']:.1f} | "
              f"{1000 * r['p99_s']:.1f} | {r['throughput_requests_per_s']:.2f} | {r['throughput_posts_per_s']:.1f} | "
              f"{1000 * r['concurrent_p50_s']:.1f} |")
    if report["breakdown"]:
        print(f"\none post in-process, median ms per part: {report['breakdown']}")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
