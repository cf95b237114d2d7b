"""`smpp predict` latency: seconds per call and per post for batches of stored test posts.

After `dvc repro`, takes the first test-split posts of the run, reads their raw SMPD records
back (``featurestore.new_posts.stored_records``) and times ``predict_posts`` on batches of
``--sizes`` posts, ``--repeat`` times each (best and median reported). A call does everything a
user's call does: load the fitted stack, parse the records, rebuild every feature group the
stack reads in a scratch store (SQL groups over the stored tables + the new rows, image
statistics and MiniLM for the new posts alone, the exact neighbour search for them), predict.
It also checks that the predictions equal the pipeline's stored ones.

    python -m benchmarks.bench_predict [--root .] [--sizes 1,10,100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from featurestore.config import load_params
from featurestore.new_posts import stored_records
from featurestore.paths import Paths
from pipelines.predict import predict_posts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--sizes", default="1,10,100")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    paths, params = Paths(root=args.root), load_params(args.params)
    stored = pl.read_parquet(paths.table("predictions_stack")).filter(pl.col("split") == "test").sort("pid")
    sizes = [int(x) for x in args.sizes.split(",")]
    records = stored_records(paths.smpd_dir, [int(p) for p in stored["pid"][: max(sizes)]])
    print(f"`python -m benchmarks.bench_predict --sizes {args.sizes} --repeat {args.repeat}`\n")
    print("| posts per call | best s / call | median s / call | best s / post | max abs diff vs pipeline |")
    print("|---|---|---|---|---|")
    for n in sizes:
        times, diff = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            got = predict_posts(paths, records[:n], params)
            times.append(time.perf_counter() - t0)
            diff = float(np.max(np.abs(got["pred"].to_numpy() - stored["pred"][:n].to_numpy())))
        print(f"| {n} | {min(times):.2f} | {statistics.median(times):.2f} | {min(times) / n:.3f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
