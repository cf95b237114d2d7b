"""Time of the SQL feature groups (history, user, temporal) on a full-size SMPD directory.

Ingests a simulated 486,194-post directory (no images; made by bench_ingest if absent), splits
it chronologically and times each group's query in DuckDB on this machine.

    python -m benchmarks.bench_features [--dir /tmp/smpd_bench/smpd] [--work /tmp/smpd_bench/work]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from featurestore.feature_groups import build_group
from pipelines import ingest, split
from featurestore.paths import Paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/smpd_bench/smpd"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/smpd_bench/work"))
    ap.add_argument("--groups", nargs="+", default=["history", "user", "temporal"])
    args = ap.parse_args(argv)
    if not (args.dir / "train_allmetadata_json").is_dir():
        from benchmarks.bench_ingest import main as make

        make(["--dir", str(args.dir), "--repeat", "1"])
    paths = Paths(root=args.work, smpd=args.dir)
    params = {"ingest": {"check_images": False}}
    ingest.run(paths, params)
    split.run(paths, params)
    for group in args.groups:
        t0 = time.perf_counter()
        table = build_group(group, paths, params)
        print(f"{group}: {table.num_rows} posts x {table.num_columns - 2} features in {time.perf_counter() - t0:.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
