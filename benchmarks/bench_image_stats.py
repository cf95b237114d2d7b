"""Image-statistics throughput: the project's reduced-size parallel decode vs a naive full-size loop.

Writes ``--n`` synthetic JPEGs, ``--image-size`` px (gradients, shapes, blur and noise; quality 90), then
times, each in a fresh subprocess so that peak RSS is its own:
  smpp   ``featurestore.image_stats.image_stats_table`` (draft decode to ``--size`` px, ``--workers`` processes)
  naive  ``Image.open(p).convert("RGB")`` at full size + the same statistics on the full array, one process
and prints a markdown table (images/s, ratio, peak RSS).

    python -m benchmarks.bench_image_stats [--n 2000] [--image-size 640] [--workers 2] [--size 256]
                                           [--face-size 192] [--no-faces] [--dir DIR] [--methods smpp,naive]

CPU ms / image counts this process and its pool workers from the first image on (module imports
excluded); ``seconds`` is wall time and includes starting the workers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_photo(seed: int, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A natural-looking RGB uint8 image ``(H, W, 3)``: colour gradient, random shapes, blur, sensor noise."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size if rng.random() < 0.7 else size[::-1]  # 30 % portrait
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (x / w * rng.uniform(0.2, 1) + y / h * rng.uniform(0.2, 1))[..., None] / 2
    img = (c0 * (1 - t) + c1 * t).astype(np.float32)
    for _ in range(rng.integers(3, 12)):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), int(rng.integers(10, h // 3)), colour, -1, cv2.LINE_AA)
        else:
            corner = (cx + int(rng.integers(10, w // 2)), cy + int(rng.integers(10, h // 2)))
            cv2.rectangle(img, (cx, cy), corner, colour, -1)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 3.0)))
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * float(rng.uniform(2, 12))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_one(args: tuple[Path, int, int]) -> None:
    from PIL import Image

    path, seed, side = args
    Image.fromarray(synthetic_photo(seed, (side, side * 3 // 4))).save(path, quality=90)


def write_images(root: Path, n: int, side: int = 640) -> list[str]:
    """Write ``n`` JPEGs (longest side ``side`` px) under ``root/train/<user>/<pid>.jpg``; returns their relative paths.

    Files already there are kept (a ``--dir`` is reused between runs).
    """
    rel = [f"train/{i % 50}@N00/{i}.jpg" for i in range(n)]
    todo = [(root / r, i, side) for i, r in enumerate(rel) if not (root / r).is_file()]
    for r in {t[0].parent for t in todo}:
        r.mkdir(parents=True, exist_ok=True)
    with mp.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_one, todo, chunksize=32)
    return rel


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its reaped children (the pool workers)."""
    ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(r.ru_utime + r.ru_stime for r in ru)


def _idle_share(seconds: float = 2.0) -> float | None:
    """Share of all CPUs idle over the next ``seconds`` (from /proc/stat; None off Linux): other load skews timings."""
    def snap() -> list[int]:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    try:
        a = snap()
        time.sleep(seconds)
        b = snap()
    except OSError:
        return None
    d = [y - x for x, y in zip(a, b)]
    return (d[3] + d[4]) / max(sum(d), 1)  # idle + iowait


def _peak_rss_mib() -> dict:
    kib = 1024.0  # ru_maxrss is in KiB on Linux
    return {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
            "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib}


def run_smpp(root: Path, rel: list[str], args: argparse.Namespace) -> dict:
    import pyarrow as pa

    from featurestore.image_stats import ImageStatsConfig, image_stats_table

    cfg = ImageStatsConfig(decode_size=args.size, workers=args.workers, faces=args.faces, face_size=args.face_size,
                           progress=False)
    images = pa.table({"pid": pa.array(range(len(rel)), pa.int64()), "path": pa.array(rel, pa.string())})
    t0 = time.perf_counter()
    _, summary = image_stats_table(images, root, cfg)
    return {"seconds": time.perf_counter() - t0, "processed": summary["processed"]}


def run_naive(root: Path, rel: list[str], args: argparse.Namespace) -> dict:
    from PIL import Image

    from featurestore.image_measures import measure

    t0 = time.perf_counter()
    rows = []
    for r in rel:
        with Image.open(root / r) as im:
            rgb = np.asarray(im.convert("RGB"))
        stats = measure(rgb, faces=args.faces, face_size=max(rgb.shape))
        rows.append([rgb.shape[1], rgb.shape[0], os.path.getsize(root / r), *stats.values()])
    return {"seconds": time.perf_counter() - t0, "processed": len(rows)}


def _child(args: argparse.Namespace) -> None:
    import pyarrow  # noqa: F401 - imported before the CPU clock starts: a one-off cost, not a per-image one
    from PIL import Image  # noqa: F401

    import featurestore.image_stats  # noqa: F401

    root = Path(args.dir)
    rel = json.loads((root / "paths.json").read_text())
    cpu0 = _cpu_s()
    out = (run_smpp if args.method == "smpp" else run_naive)(root, rel, args)
    print(json.dumps({**out, "cpu_s": _cpu_s() - cpu0, **_peak_rss_mib()}))


def _spawn(method: str, args: argparse.Namespace, root: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_image_stats", "--method", method, "--dir", str(root),
           "--workers", str(args.workers), "--size", str(args.size), "--face-size", str(args.face_size)] + \
        ([] if args.faces else ["--no-faces"])
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--image-size", type=int, default=640, help="longest side of the JPEGs written (px)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=256, help="decode_size of the project's method (px)")
    ap.add_argument("--face-size", type=int, default=192, help="face_size of the project's method (px)")
    ap.add_argument("--faces", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--methods", default="smpp,naive", help="comma-separated subset of smpp,naive")
    ap.add_argument("--dir", type=Path, default=None, help="image directory (default: a temporary one)")
    ap.add_argument("--method", choices=("smpp", "naive"), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.method:
        return _child(args)
    with tempfile.TemporaryDirectory(prefix="bench_image_stats_") as tmp:
        root = args.dir or Path(tmp)
        t0 = time.perf_counter()
        rel = write_images(root, args.n, args.image_size)
        (root / "paths.json").write_text(json.dumps(rel))
        print(f"wrote {args.n} JPEGs of {args.image_size} px in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        idle = _idle_share()
        res = {m: _spawn(m, args, root) for m in args.methods.split(",")}
    ips = {m: r["processed"] / r["seconds"] for m, r in res.items()}
    names = {"smpp": f"smpp image_stats_table, draft {args.size} px, faces at {args.face_size} px, "
                     f"{args.workers} workers",
             "naive": "naive full-size decode + same statistics, 1 process"}
    print(f"{os.cpu_count()} cpus, {100 * idle:.0f} % idle just before timing (other load slows both methods)"
          if idle is not None else f"{os.cpu_count()} cpus")
    print("| method | images | faces | seconds | images/s | CPU ms / image | peak RSS MiB (main / largest worker) |")
    print("|---|---|---|---|---|---|---|")
    for m, r in res.items():
        workers = f"{r['worker_rss_mib']:.0f}" if r["worker_rss_mib"] else "-"
        print(f"| {names[m]} | {args.n} | {args.faces} | {r['seconds']:.2f} | {ips[m]:.0f} | "
              f"{1e3 * r['cpu_s'] / r['processed']:.2f} | {r['rss_mib']:.0f} / {workers} |")
    if len(ips) == 2:
        print(f"\nspeed-up smpp / naive: {ips['smpp'] / ips['naive']:.1f}x")


if __name__ == "__main__":
    main()
