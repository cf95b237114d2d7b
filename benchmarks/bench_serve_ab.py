"""Two versions of `smpp serve` side by side: one-post latency, requests alternating between them.

A box whose speed drifts over minutes (a shared VM) makes two `bench_serve` runs made one after the
other hard to compare. This starts `smpp serve` twice over the same run: from this checkout and
from ``--other`` (another checkout of the code, e.g. ``git worktree add ../old <commit>``; the
server process runs there, so it imports that code). Each answers ``--warmup`` untimed posts, then
``--n`` rounds each send one post to both (which goes first alternates), so both are measured at the
same moments. The server not being asked is stopped (SIGSTOP, SIGCONT when its turn comes) unless
``--no-pause``: what it runs between its own requests (a BLAS pool still spinning after a call, as
OpenBLAS's workers do for about 0.1 s) would otherwise take the CPU from the other. Prints
p50/p95/p99 per version; writes ``--out`` (JSON).

    python -m benchmarks.bench_serve_ab --root RUN --other ../old [--n 200] [--warmup 5] [--no-pause]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

from benchmarks.bench_serve import free_port, post, start_server, test_posts
from benchmarks.machine import cpu_model
from featurestore.paths import Paths
from pipelines.manifest import open_run

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "serve_ab.json"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    ap.add_argument("--other", type=Path, required=True, help="the other checkout of the code to serve the run with")
    ap.add_argument("--n", type=int, default=200, help="rounds: one post to each server (default: 200)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed posts to each server first (default: 5)")
    ap.add_argument("--no-pause", action="store_true",
                    help="leave the server not being asked running (default: stop it meanwhile)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"results JSON (default: {OUT})")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    run = open_run(root, None, need_smpd=True)
    records, _ = test_posts(Paths(root=root, smpd=run.smpd_dir), args.n + args.warmup)
    logs = Path(tempfile.mkdtemp(prefix="bench-serve-ab-"))
    versions = {"this": REPO, "other": args.other.resolve()}
    servers, clients = {}, {}
    try:
        for name, code in versions.items():
            port = free_port()
            os.chdir(code)  # `python -m pipelines.cli` imports the code of its working directory
            servers[name], _ = start_server(root, None, port, logs / f"{name}.log")
            clients[name] = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        os.chdir(REPO)

        def ask(name: str, rec: dict) -> float:
            if not args.no_pause:
                for other, proc in servers.items():
                    os.kill(proc.pid, signal.SIGCONT if other == name else signal.SIGSTOP)
            return post(clients[name], [rec])[0]

        for rec in records[-args.warmup:] if args.warmup else []:
            for name in versions:
                ask(name, rec)
        took: dict[str, list[float]] = {name: [] for name in versions}
        for i, rec in enumerate(records[:args.n]):
            order = list(versions) if i % 2 == 0 else list(versions)[::-1]
            for name in order:
                took[name].append(ask(name, rec))
    finally:
        for c in clients.values():
            c.close()
        for proc in servers.values():
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            proc.wait(60)
    ms = {name: {f"p{q}": round(1000 * float(np.percentile(t, q)), 2) for q in (50, 95, 99)} for name, t in took.items()}
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_model(),
              "cpus": os.cpu_count(), "root": str(root), "n": args.n, "warmup": args.warmup,
              "idle_server_paused": not args.no_pause,
              "code": {name: str(path) for name, path in versions.items()}, "one_post_ms": ms}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"`python -m benchmarks.bench_serve_ab --n {args.n} --warmup {args.warmup}"
          f"{' --no-pause' if args.no_pause else ''}` ({cpu_model()}, "
          f"{os.cpu_count()} CPUs, {report['date']})\n")
    print("| code | one post p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, m in ms.items():
        print(f"| {name} ({versions[name]}) | {m['p50']} | {m['p95']} | {m['p99']} |")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
