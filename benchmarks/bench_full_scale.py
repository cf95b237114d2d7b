"""Full-size run: simulate an SMPD directory with images, run ``smpp run`` on it, table every stage.

    python -m benchmarks.bench_full_scale                       # 486,194 posts (the whole SMPD), ~1 h+
    python -m benchmarks.bench_full_scale --posts 50000         # the routine regression variant (minutes)
    nohup python -m benchmarks.bench_full_scale > full.log 2>&1 &   # in the background; re-invoke to resume

Re-invoking it is cheap: the simulated directory is kept (a ``.complete`` marker says it was
written whole) and ``smpp run`` skips every stage whose inputs and params are unchanged, so
a run cut off part-way resumes at the first unfinished stage. Writes a per-stage table (wall
time, CPU time, peak RSS of the process tree, rows in and out, skipped or run) to
``benchmarks/results/full_scale[_<posts>].json`` and prints it as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from benchmarks.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def simulate(out: Path, posts: int, image_size: int, workers: int) -> dict:
    """The simulated SMPD directory, written once (``.complete`` marks a whole one)."""
    marker = out / ".complete"
    if marker.is_file():
        return json.loads(marker.read_text()) | {"reused": True}
    from featurestore.simulate import SimConfig, simulate_smpd

    t0 = time.perf_counter()
    simulate_smpd(out, SimConfig(posts=posts, image_size=image_size, workers=workers))
    info = {"posts": posts, "image_size": image_size, "seconds": round(time.perf_counter() - t0, 1),
            "size_mb": round(du_mb(out), 1), "reused": False}
    marker.write_text(json.dumps(info))
    return info


def _rows(root: Path, rel: str) -> int:
    """Rows of the Parquet file(s) at ``root/rel`` (a file or every Parquet file below a folder)."""
    path = root / rel
    files = [path] if path.suffix == ".parquet" and path.is_file() else sorted(path.rglob("*.parquet")) \
        if path.is_dir() else []
    return sum(pq.read_metadata(f).num_rows for f in files)


def stage_rows(workdir: Path) -> dict[str, tuple[int, int]]:
    """stage -> (rows in its Parquet inputs, rows in its Parquet outputs), from dvc.yaml's deps/outs."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    stages |= yaml.safe_load((REPO / "pipelines" / "optional" / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, st in stages.items():
        outs = [o if isinstance(o, str) else next(iter(o)) for o in st.get("outs", [])]
        ins = [d for d in st.get("deps", []) if d.startswith("data/") and not d.startswith("data/raw")]
        out[name] = (sum(_rows(workdir, d) for d in ins), sum(_rows(workdir, o) for o in outs if o.startswith("data/")))
    return out


def stage_table(workdir: Path) -> list[dict]:
    """One row per stage of the run's manifest: status, wall, CPU, peak RSS, rows in and out."""
    manifest = json.loads((workdir / "run.json").read_text())
    rows = stage_rows(workdir)
    table = []
    for name, st in manifest["stages"].items():
        ran = st.get("status") == "done"
        cost = (st.get("cost") if ran else st.get("computed_cost")) or {}  # a skipped stage: its computing run's
        table.append({"stage": name, "status": st.get("status"), "this_run_s": cost.get("wall_s") if ran else 0.0,
                      "wall_s": cost.get("wall_s"), "cpu_s": cost.get("cpu_s"), "peak_rss_mb": cost.get("peak_rss_mb"),
                      "rows_in": rows.get(name, (None, None))[0], "rows_out": rows.get(name, (None, None))[1]})
    return table


def markdown(table: list[dict], total: dict) -> str:
    """Per stage: this invocation's status and seconds, and the cost of the run that computed its outputs."""
    lines = ["| stage | status | s this run | wall s (computed) | CPU s | peak RSS MiB | rows in | rows out |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        lines.append(f"| {r['stage']} | {r['status']} | {r['this_run_s']} | {r['wall_s']} | {r['cpu_s']} | "
                     f"{r['peak_rss_mb']} | {r['rows_in']:,} | {r['rows_out']:,} |")
    lines.append(f"| **total** | | {total['this_run_s']} | **{total['wall_s']}** | {total['cpu_s']} | "
                 f"**{total['peak_rss_mb']}** | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=486_194)
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/full_<posts>")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--mode", choices=("submit", "holdout"), default="submit")
    ap.add_argument("--image-size", type=int, default=320)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    out = args.out or REPO / "benchmarks" / "out" / f"full_{args.posts}"
    out.mkdir(parents=True, exist_ok=True)
    sim = simulate(out / "smpd", args.posts, args.image_size, args.workers)
    print(f"simulated {args.posts:,} posts: {sim}", flush=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--smpd-dir", str(out / "smpd"), "--workdir", str(out / "work"),
           "--params", str(args.params), "--mode", args.mode]
    rc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
    wall = round(time.perf_counter() - t0, 1)
    table = stage_table(out / "work")
    # this_run_s: this invocation, end to end; wall_s: the stages' own costs from the runs that computed them
    total = {"this_run_s": wall, "wall_s": round(sum(r["wall_s"] or 0 for r in table), 1),
             "cpu_s": round(sum(r["cpu_s"] or 0 for r in table), 1),
             "peak_rss_mb": max((r["peak_rss_mb"] or 0 for r in table), default=0)}
    evaluation = out / "work" / "reports" / "evaluation.json"
    result = {"date": date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(), "posts": args.posts,
              "mode": args.mode, "command": " ".join(["python -m benchmarks.bench_full_scale", *(argv or sys.argv[1:])]),
              "exit_code": rc, "simulate": sim, "stages": table, "total": total,
              "evaluation": json.loads(evaluation.read_text()) if evaluation.is_file() else None}
    name = "full_scale.json" if args.posts == 486_194 else f"full_scale_{args.posts}.json"
    (REPO / "benchmarks" / "results" / name).write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(table, total))
    return rc


if __name__ == "__main__":
    sys.exit(main())
