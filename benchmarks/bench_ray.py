"""Local executor vs Ray (one node, several nodes on this machine): per-stage wall time of ``smpp run``.

Simulates ``--posts`` posts once (or reads ``--smpd-dir``), then runs the whole pipeline
(``smpp run --mode holdout``) once per variant into its own work dir, each in a fresh process:

- ``local``: ``--executor local`` (the default; Ray is never imported);
- ``ray1``:  ``--executor ray`` without an address: a Ray instance started by the run, all cores;
- ``rayN``:  a Ray cluster of N nodes on this machine (``ray.cluster_utils.Cluster``, the cores
  split evenly between the nodes), joined with ``--ray-address``.

Reports every stage's wall time (from each run's manifest) and checks that every variant wrote the
same tables and metrics as ``local`` (Parquet files and metrics JSON, byte for byte). Prints (and with
``--out`` writes) markdown. A finished variant's figures are kept in ``WORKDIR/<variant>.result.json``,
so a killed benchmark rerun with the same arguments resumes at the first unfinished variant.

    python -m benchmarks.bench_ray --posts 4000 --workdir /tmp/bench_ray [--params params.yaml] \\
        [--variants local,ray1,ray2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]


def simulate(posts: int, out: Path, seed: int = 42) -> Path:
    """A simulated SMPD directory of ``posts`` posts under ``out`` (reused when already there)."""
    from featurestore.simulate import SimConfig, simulate_smpd

    smpd, done = out / f"smpd_{posts}", out / f"smpd_{posts}.done"
    if not done.is_file():
        simulate_smpd(smpd, SimConfig(posts=posts, seed=seed, workers=2, progress=False))
        done.write_text("ok\n")
    return smpd


def run_variant(name: str, smpd: Path, work: Path, params: Path | None) -> dict:
    """``smpp run`` of one variant in a fresh process, into an emptied ``work`` (a workdir holding an earlier
    run would only rerun the stages whose inputs changed); returns {wall_s, stages: {stage: seconds}}."""
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--smpd-dir", str(smpd), "--workdir", str(work),
           "--mode", "holdout"] + (["--params", str(params)] if params else [])
    cluster = None
    if name == "local":
        cmd += ["--executor", "local"]
    elif name == "ray1":
        cmd += ["--executor", "ray"]
    else:
        cluster = _cluster(int(name[3:]))
        cmd += ["--executor", "ray", "--ray-address", cluster.address]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, cwd=REPO, env=env)
    finally:
        if cluster is not None:
            cluster.shutdown()
    wall = time.perf_counter() - t0
    manifest = json.loads((work / "run.json").read_text())
    stages = {s: rec.get("seconds") for s, rec in manifest["stages"].items() if rec.get("status") == "done"}
    return {"wall_s": round(wall, 1), "stages": stages}


def _cluster(nodes: int):
    """``nodes`` Ray nodes on this machine, the cores split between them, no dashboard."""
    from ray.cluster_utils import Cluster

    cpus = max(1, (os.cpu_count() or 2) // nodes)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    return cluster


def artefacts(work: Path) -> dict[str, bytes]:
    """Every Parquet table and the metrics of a run, by path relative to its work dir."""
    files = sorted((work / "data").rglob("*.parquet")) + sorted((work / "reports/metrics").glob("*.json")) + [
        work / "reports/evaluation.json"]
    return {str(p.relative_to(work)): p.read_bytes() for p in files if "embeddings" not in p.parts}


def report(posts: int, results: dict[str, dict], same: dict[str, list[str]]) -> str:
    """Markdown: the stages' wall time per variant, the totals and the equality check."""
    names = list(results)
    stages = [s for s in results[names[0]]["stages"]]
    lines = [f"### Ray executor: {posts:,} posts, {date.today()}, {os.cpu_count()} cores ({cpu_model()})", "",
             "| stage | " + " | ".join(f"{n} (s)" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for s in stages:
        lines.append(f"| {s} | " + " | ".join(f"{results[n]['stages'].get(s) or 0:.1f}" for n in names) + " |")
    lines.append("| **whole run (process wall)** | " + " | ".join(f"**{results[n]['wall_s']:.1f}**" for n in names)
                 + " |")
    lines.append("")
    for n, diff in same.items():
        lines.append(f"- {n}: " + ("every table and metric byte-identical to local" if not diff else
                                   f"{len(diff)} files differ from local: {', '.join(diff[:8])}"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posts", type=int, default=4000)
    p.add_argument("--smpd-dir", type=Path, default=None, help="an SMPD directory (default: simulate --posts)")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--params", type=Path, default=None, help="params YAML (default: built-in defaults)")
    p.add_argument("--variants", default="local,ray1,ray2")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    smpd = args.smpd_dir or simulate(args.posts, args.workdir)
    results, same = {}, {}
    for name in args.variants.split(","):
        done = args.workdir / f"{name}.result.json"  # a finished variant is kept: a rerun resumes after it
        if done.is_file():
            results[name] = json.loads(done.read_text())
        else:
            results[name] = run_variant(name, smpd, args.workdir / name, args.params)
            done.write_text(json.dumps(results[name]))
        print(name, json.dumps(results[name]), flush=True)
    if "local" in results:
        base = artefacts(args.workdir / "local")
        for name in results:
            if name != "local":
                other = artefacts(args.workdir / name)
                same[name] = sorted(k for k in base.keys() | other.keys() if base.get(k) != other.get(k))
    text = report(args.posts, results, same)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
