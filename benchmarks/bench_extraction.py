"""CPU embedding-extraction throughput, and how far bf16 autocast moves the embeddings from fp32.

Each timed run is the project's extraction path: a registry encoder (``create_encoder`` with an
``EmbedConfig``'s overrides) driven by ``models.extraction.extract`` (batches in the encoder's sort
order, preprocessing in ``--workers`` DataLoader processes, one shard) and ``merge_shards``; it is
timed after an untimed warm-up extraction of ``--warmup`` rows, once per precision x thread count:

  minilm          texts/s on ``--texts`` PPCL texts ("The title of the image is ... and the tags are ...")
                  from the run's ``text`` table under ``--root`` (else a deterministic synthetic set);
                  bf16 rows also give the per-row cosine to the fp32 embeddings (mean, min) and the
                  mean overlap of each text's top-10 cosine neighbours (within the N texts) with fp32's.
  clip-vit-b-32   images/s of the image tower, JPEG decode + resize/crop included, on ``--images``
                  JPEGs of the run's SMPD dir (else synthetic 320-px photos in a temp dir), with
                  RANDOM open_clip weights (no checkpoint offline): throughput only.

Prints a Markdown table and writes it, with the command, date, torch version and load, to ``--out``.

    python -m benchmarks.bench_extraction [--root .] [--texts 2048] [--images 256] [--threads 1,2]
        [--workers 1] [--batch-size 256] [--warmup 64] [--precisions fp32,bf16]
        [--out benchmarks/results/extraction.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from featurestore.embeddings import embedding_arrays
from models.encoders import create_encoder, encoder_config
from models.encoders.clip import ClipImageEncoder, clip_model_cfg
from models.encoders.registry import Encoder, EncoderConfig
from models.extraction import EmbedConfig, extract, merge_shards
from featurestore.paths import Paths

WORDS = ("sunset beach dog cat city night portrait food flower mountain snow car street river bird bridge "
         "tree sky cloud rain macro nikon canon travel summer winter autumn spring wedding party music "
         "concert art graffiti building architecture lake sea boat train bike red blue green black white").split()
RANDOM_WEIGHTS = "random weights: throughput only"


# ---------------------------------------------------------------- inputs

def synthetic_text_table(n: int, seed: int = 0) -> pa.Table:
    """``title``, ``tags`` of ``n`` Flickr-like posts (1-6 title words, 0-20 tags, 10 % no title); deterministic."""
    rng = np.random.default_rng(seed)
    titles = [" ".join(rng.choice(WORDS, rng.integers(1, 7))) if rng.random() > 0.1 else None for _ in range(n)]
    tags = [" ".join(rng.choice(WORDS, rng.integers(0, 21))) for _ in range(n)]
    return pa.table({"title": pa.array(titles, pa.string()), "tags": pa.array(tags, pa.string())})


def text_inputs(root: Path, n: int, seed: int = 0) -> tuple[pa.Table, str]:
    """``n`` rows of extraction inputs (pid, postdate, title, tags) and where they came from.

    The first ``n`` posts of the run's ``text`` table (repeated when it has fewer), else
    ``synthetic_text_table``. Pids are 0..n-1 so that repeated posts stay distinct rows.
    """
    path = Paths(Path(root)).table("text")
    if path.is_file():
        table = pq.read_table(path, columns=["title", "alltags"]).rename_columns(["title", "tags"])
        source = f"`{path}` (first {min(n, table.num_rows)} of {table.num_rows} posts)"
        table = table.take(np.arange(n) % table.num_rows) if table.num_rows else synthetic_text_table(n, seed)
    else:
        table, source = synthetic_text_table(n, seed), f"synthetic (seed {seed}; no `{path}`)"
    ids = pa.array(np.arange(n, dtype=np.int64))
    return pa.table({"pid": ids, "postdate": ids, "title": table["title"], "tags": table["tags"]}), source


def write_jpegs(directory: Path, m: int, size: int = 320, seed: int = 0) -> list[str]:
    """``m`` synthetic photos (``size`` px on the long side, quality 90) under ``directory``; relative paths."""
    from PIL import Image

    from benchmarks.bench_image_stats import synthetic_photo

    rel = [f"img/{i:05d}.jpg" for i in range(m)]
    (Path(directory) / "img").mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(rel):
        Image.fromarray(synthetic_photo(seed + i, (size, size * 3 // 4))).save(Path(directory) / r, quality=90)
    return rel


def image_inputs(root: Path, m: int, scratch: Path) -> tuple[pa.Table, Path, str]:
    """``m`` rows (pid, postdate, path, exists), the directory the paths are relative to, and the source.

    The first ``m`` existing images of the run's ``images`` table under its SMPD dir, else ``m``
    synthetic 320-px JPEGs written to ``scratch``.
    """
    paths = Paths(Path(root))
    table_path, smpd = paths.table("images"), paths.smpd_dir
    rel: list[str] = []
    if table_path.is_file():
        table = pq.read_table(table_path, columns=["path", "exists"])
        rel = [p for p, ok in zip(table["path"].to_pylist(), table["exists"].to_pylist()) if ok and p][:m]
        rel = rel if rel and all((smpd / p).is_file() for p in rel[:8]) else []
    if rel:
        source = f"`{smpd}` ({len(rel)} JPEGs listed in `{table_path}`)"
    else:
        smpd, rel = Path(scratch), write_jpegs(Path(scratch), m)
        source = f"{m} synthetic 320-px JPEGs (no images under `{paths.smpd_dir}`)"
    ids = pa.array(np.arange(len(rel), dtype=np.int64))
    return pa.table({"pid": ids, "postdate": ids, "path": rel, "exists": [True] * len(rel)}), smpd, source


# ---------------------------------------------------------------- encoders

class RandomClipImageEncoder(ClipImageEncoder):
    """``clip-vit-b-32`` with open_clip's random initialisation instead of a checkpoint: for timing only.

    Everything but the weights (transform, JPEG loading, ``encode``, autocast) is ``ClipImageEncoder``'s.
    """

    def __init__(self, config: EncoderConfig, seed: int = 0):
        import open_clip

        Encoder.__init__(self, config)
        cfg = clip_model_cfg(config)
        torch.manual_seed(seed)  # same weights for every precision
        self.model = open_clip.model.CLIP(**cfg, quick_gelu=config.quick_gelu).eval().to(self.device)
        self.transform = open_clip.image_transform(cfg["vision_cfg"]["image_size"], is_train=False)
        self.root = config.image_root


def text_encoder(cfg: EmbedConfig) -> Encoder:
    return create_encoder("minilm", **cfg.overrides())


def image_encoder(cfg: EmbedConfig, image_root: Path, **options) -> Encoder:
    """The random-weight ``clip-vit-b-32`` image tower reading images under ``image_root``."""
    return RandomClipImageEncoder(encoder_config("clip-vit-b-32", **cfg.overrides(), image_root=str(image_root),
                                                 **options))


# ---------------------------------------------------------------- measurements

def time_extraction(encoder: Encoder, inputs: pa.Table, warmup: int = 64) -> tuple[float, np.ndarray]:
    """Seconds to ``extract`` every row of ``inputs`` and the (N, D) embeddings, after a warm-up
    extraction of its first ``warmup`` rows (at most one batch)."""
    with tempfile.TemporaryDirectory(prefix="bench_extraction_") as tmp:
        warm = inputs.slice(0, max(1, min(inputs.num_rows, encoder.config.batch_size, warmup)))
        extract(encoder, None, Path(tmp) / "warmup", shard_size=max(warm.num_rows, 1), progress=False, inputs=warm)
        t0 = time.perf_counter()
        extract(encoder, None, Path(tmp) / "run", shard_size=inputs.num_rows, progress=False, inputs=inputs)
        seconds = time.perf_counter() - t0
        _, _, emb = embedding_arrays(merge_shards(Path(tmp) / "run", inputs))
    return seconds, emb


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) cosine similarity of row i of ``a`` (N, D) with row i of ``b`` (N, D)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def top_k_neighbours(emb: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each row's k most cosine-similar other rows of ``emb`` (N, D); k is capped at N - 1."""
    x = emb.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T  # (N, N)
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(x) - 1)
    return np.argpartition(-sim, k - 1, axis=1)[:, :k]


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's top-k cosine neighbours in ``a`` that are also its top-k in ``b`` (1 = same)."""
    na, nb = top_k_neighbours(a, k), top_k_neighbours(b, k)
    return float(np.mean([len(np.intersect1d(x, y)) / na.shape[1] for x, y in zip(na, nb)]))


def agreement(ref: np.ndarray, other: np.ndarray, k: int = 10) -> dict:
    """How close ``other`` (N, D) is to ``ref`` (N, D): per-row cosine mean and min, top-k neighbour overlap."""
    cos = row_cosines(ref, other)
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "overlap": neighbour_overlap(ref, other, k)}


def measure(make_encoder, inputs: pa.Table, precisions: list[str], threads: list[int], warmup: int = 64) -> dict:
    """{(precision, threads): (seconds, (N, D) embeddings)}; ``make_encoder(precision)`` runs once per precision."""
    before, runs = torch.get_num_threads(), {}
    try:
        for precision in precisions:
            encoder = make_encoder(precision)
            for t in threads:
                torch.set_num_threads(t)
                runs[precision, t] = time_extraction(encoder, inputs, warmup)
    finally:
        torch.set_num_threads(before)
    return runs


def summarise(runs: dict, label: dict, k: int | None = 10) -> list[dict]:
    """One table row per run of ``measure``: throughput, and (unless ``k`` is None) agreement with fp32
    at the same thread count. ``label`` (tower, weights, workers) is copied into every row."""
    rows = []
    for (precision, t), (seconds, emb) in runs.items():
        ref = runs.get(("fp32", t))
        row = {**label, "precision": precision, "threads": t, "n": len(emb), "seconds": seconds,
               "per_s": len(emb) / seconds, "vs_fp32": ref[0] / seconds if ref else None}
        if k is not None and ref is not None and precision != "fp32":
            row.update(agreement(ref[1], emb, k))
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report

def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown_table(rows: list[dict], k: int = 10) -> str:
    head = ["tower", "weights", "precision", "threads", "workers", "n", "s", "items/s", "× fp32",
            "cos mean", "cos min", f"top-{k} overlap"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["tower"], r["weights"], r["precision"], str(r["threads"]), str(r["workers"]), str(r["n"]),
                 f"{r['seconds']:.2f}", f"{r['per_s']:.1f}", _fmt(r["vs_fp32"], ".2f"),
                 _fmt(r.get("cos_mean"), ".6f"), _fmt(r.get("cos_min"), ".6f"), _fmt(r.get("overlap"), ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_summary() -> str:
    """CPU model and the SIMD flags that decide bf16 speed (Linux /proc/cpuinfo; '?' elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((set(ln.split(":", 1)[1].split()) for ln in info.splitlines() if ln.startswith("flags")), set())
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, {'/'.join(simd) or 'no AVX2'}"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def report(command: str, rows: list[dict], sources: dict, settings: str, threads_at_start: int,
           load_at_start: str, k: int = 10) -> str:
    lines = ["# CPU embedding extraction: throughput and bf16 vs fp32", "", f"`{command}`", "",
             f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
             f"- torch {torch.__version__}; torch.get_num_threads() at start: {threads_at_start}",
             f"- CPU: {cpu_summary()}",
             f"- load average (1, 5, 15 min): {load_at_start} at the start, {load_average()} at the end",
             f"- {settings}", *[f"- {name}: {src}" for name, src in sources.items()], "",
             markdown_table(rows, k), "",
             "items/s: rows of `models.extraction.extract` (preprocessing in DataLoader workers, batches, "
             "shard write) per wall second, after an untimed warm-up extraction; × fp32: speed relative to fp32 "
             f"at the same thread count. cos: per-row cosine to the fp32 embedding; top-{k} overlap: mean share of "
             f"each text's {k} nearest texts (cosine, within the N) shared with fp32. CLIP rows use {RANDOM_WEIGHTS}.",
             ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def _int_list(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_extraction", description=__doc__,
                                formatter_class=_HelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."),
                   help="work root: texts from its text table, JPEGs from its SMPD dir (synthetic when absent)")
    p.add_argument("--texts", type=int, default=2048, help="MiniLM: number of texts N (0 skips)")
    p.add_argument("--images", type=int, default=256, help="CLIP image tower: number of JPEGs M (0 skips)")
    p.add_argument("--threads", type=_int_list, default="1,2", help="torch CPU thread counts, comma-separated")
    p.add_argument("--precisions", type=lambda s: s.split(","), default="fp32,bf16",
                   help="autocast precisions, comma-separated; agreement columns need fp32 in the list")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (preprocessing)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per encoder batch")
    p.add_argument("--warmup", type=int, default=64, help="rows of the untimed warm-up extraction before each run")
    p.add_argument("--k", type=int, default=10, help="top-k cosine neighbours compared between fp32 and bf16")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/extraction.md"),
                   help="Markdown report to write ('' to skip)")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    threads_at_start, load_at_start, t0 = torch.get_num_threads(), load_average(), time.perf_counter()
    cfg = EmbedConfig(batch_size=args.batch_size, num_workers=args.workers, device="cpu", progress=False)
    rows, sources = [], {}
    label = {"workers": args.workers}
    if args.texts > 0:
        inputs, sources["texts"] = text_inputs(args.root, args.texts)
        runs = measure(lambda p: text_encoder(replace(cfg, precision=p)), inputs, args.precisions, args.threads,
                       args.warmup)
        rows += summarise(runs, {**label, "tower": "minilm", "weights": "bundled"}, args.k)
    if args.images > 0:
        with tempfile.TemporaryDirectory(prefix="bench_extraction_jpegs_") as scratch:
            inputs, image_root, sources["images"] = image_inputs(args.root, args.images, Path(scratch))
            runs = measure(lambda p: image_encoder(replace(cfg, precision=p), image_root), inputs,
                           args.precisions, args.threads, args.warmup)
            rows += summarise(runs, {**label, "tower": "clip-vit-b-32 image", "weights": RANDOM_WEIGHTS}, None)
    command = "python -m benchmarks.bench_extraction" + ("" if not argv else " " + shlex.join(argv))
    settings = (f"batch size {args.batch_size}, warm-up {args.warmup} rows, device cpu; "
                f"whole benchmark {time.perf_counter() - t0:.0f} s")
    text = report(command, rows, sources, settings, threads_at_start, load_at_start, args.k)
    print(text)
    if str(args.out) not in ("", "."):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
