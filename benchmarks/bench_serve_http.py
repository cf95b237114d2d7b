"""The HTTP layer's share of a served prediction: uvicorn's pure-Python stack vs uvloop + httptools.

    python -m benchmarks.bench_serve_http --root RUN [--n 200]

Loads the run once and serves the same app (``pipelines.serve.create_app``) from two uvicorn servers
in this process, one with ``loop=asyncio, http=h11`` and one with ``loop=uvloop, http=httptools``
(what uvicorn picks by itself when those two packages are installed: the ``serve`` extra). Sends
``--n`` rounds, each one request of each kind to each server in turn (so drift of the machine hits
both alike): ``GET /health`` (the HTTP layer alone) and ``POST /predict`` with one post. Prints the
p50/p95 in ms per server and request kind.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from benchmarks.bench_serve import test_posts
from benchmarks.machine import cpu_model
from featurestore.paths import Paths
from pipelines.predictor import Predictor
from pipelines.serve import create_app

STACKS = {"asyncio + h11": {"loop": "asyncio", "http": "h11"},
          "uvloop + httptools": {"loop": "uvloop", "http": "httptools"}}


def serve(app, **kw) -> tuple[uvicorn.Server, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **kw))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args(argv)
    predictor = Predictor.open(args.root, image_process=True)
    records, _ = test_posts(Paths(root=args.root, smpd=predictor.paths.smpd_dir), 20)
    app = create_app(predictor)
    servers = {name: serve(app, **kw) for name, kw in STACKS.items()}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        clients = {name: httpx.Client(base_url=f"http://127.0.0.1:{port}") for name, (_, port) in servers.items()}
        for i in range(args.n + 5):
            for name, client in clients.items():
                for kind, call in (("GET /health", lambda c: c.get("/health")),
                                   ("POST /predict, 1 post", lambda c: c.post("/predict", json=records[i % 20]))):
                    t0 = time.perf_counter()
                    assert call(client).status_code == 200
                    if i >= 5:  # warm-up rounds are not counted
                        times.setdefault((name, kind), []).append(time.perf_counter() - t0)
    finally:
        for server, _ in servers.values():
            server.should_exit = True
        predictor.close()
    print(f"`python -m benchmarks.bench_serve_http --n {args.n}` ({predictor.stored_posts} stored posts, "
          f"{cpu_model()})\n")
    print("| server | request | p50 ms | p95 ms |\n|---|---|---:|---:|")
    for (name, kind), ts in times.items():
        print(f"| {name} | {kind} | {1000 * np.median(ts):.2f} | {1000 * np.percentile(ts, 95):.2f} |")


if __name__ == "__main__":
    main()
