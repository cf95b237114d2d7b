"""Ingest throughput on a full-size SMPD-format directory (486,194 posts, images skipped).

Compares ``featurestore.ingest.ingest_smpd`` with a plain ``json.load`` + pandas merge of the
same files, each in a fresh subprocess so that peak RSS is measured per method.

    python -m benchmarks.bench_ingest [--posts 486194] [--dir /tmp/smpd_bench] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def _smpp(smpd: Path) -> dict:
    from featurestore.ingest import IngestConfig, ingest_smpd, write_tables

    t0 = time.perf_counter()
    tables, report = ingest_smpd(smpd, IngestConfig(check_images=False))
    parsed = time.perf_counter() - t0
    write_tables(tables, smpd.parent / (smpd.name + ".tables"))
    return {"seconds": time.perf_counter() - t0, "parse_seconds": parsed, "posts": report["posts_kept"]}


def _pandas(smpd: Path) -> dict:
    """What a typical one-off script does: json.load every file, DataFrame, merge on Pid."""
    import pandas as pd

    t0 = time.perf_counter()
    frames = []
    for split in ("train", "test"):
        d = smpd / f"{split}_allmetadata_json"
        parts = []
        for name in ("category", "text", "temporalspatial_information", "additional_information"):
            with open(d / f"{split}_{name}.json") as f:
                df = pd.DataFrame(json.load(f))
            df["Pid"] = df["Pid"].astype("int64")
            parts.append(df.drop(columns=["Uid"]) if parts else df)
        with open(d / f"{split}_user_data.json") as f:
            user = pd.DataFrame(json.load(f))
        user.index = user.index.astype(int)
        parts.append(user.sort_index().drop(columns=["Uid"]))
        img = pd.read_csv(d / f"{split}_img_filepath.txt", header=None, names=["path"])
        img["Pid"] = parts[0]["Pid"].values
        parts.append(img)
        if split == "train":
            lab = pd.read_csv(d / "train_label.txt", header=None, names=["label"])
            lab["Pid"] = parts[0]["Pid"].values
            parts.append(lab)
        df = parts[0]
        for p in parts[1:]:
            df = df.merge(p, on="Pid", how="left")
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.to_parquet(smpd.parent / (smpd.name + ".pandas.parquet"))
    return {"seconds": time.perf_counter() - t0, "posts": len(out)}


def _child(method: str, smpd: Path) -> None:
    result = {"smpp": _smpp, "pandas": _pandas}[method](smpd)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["child_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def _run_child(method: str, smpd: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_ingest", "--child", method, "--dir", str(smpd)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=486_194)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/smpd_bench/smpd"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--child", choices=("smpp", "pandas"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.dir)
        return
    if not (args.dir / "train_allmetadata_json").is_dir():
        from featurestore.simulate import SimConfig, simulate_smpd

        t0 = time.perf_counter()
        simulate_smpd(args.dir, SimConfig(posts=args.posts, images=False))
        print(f"simulated {args.posts} posts (no images) in {time.perf_counter() - t0:.1f} s")
    size = sum(f.stat().st_size for f in args.dir.rglob("*") if f.is_file()) / 2**20
    print(f"SMPD dir {args.dir}: {size:.0f} MiB of metadata")
    for method in ("smpp", "pandas"):
        runs = [_run_child(method, args.dir) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        every = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"{method:7s} posts={best['posts']} best of {args.repeat}: {best['seconds']:.2f} s  "
              f"(all: {every})  peak RSS {best['peak_rss_mb']:.0f} MiB (largest worker {best['child_peak_rss_mb']:.0f} MiB)")


if __name__ == "__main__":
    main()
