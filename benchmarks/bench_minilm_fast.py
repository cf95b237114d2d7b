"""MiniLM fast path: texts/s of fp32 / int8 / bf16 with and without token-length sorting and truncation,
and how far each moves the embeddings from the fp32 baseline; plus the token lengths of SMPD-like texts.

Each timed run is ``models.extraction.extract`` over one shard of ``--texts`` simulated posts
(``featurestore.simulate``: PPCL texts "The title of the image is {title} and the tags are {tags}"),
after an untimed warm-up, in one process, variants back to back (same load, same thermal state):

  fp32, pid order, <= 256 tokens, batch 256       baseline (no sorting)
  fp32, character-length order, <= 256, batch 256  the previous default
  fp32 / int8 / bf16, token-length order, <= --max-seq-length, batch --batch-size

Agreement with the baseline: per-row cosine (mean, min) and the mean overlap of each text's top-k
cosine neighbours (within the N texts). Token lengths (WordPiece, [CLS] and [SEP] included) of
every simulated post and of the real SMPD text records under ``--samples`` (when present).

    python -m benchmarks.bench_minilm_fast [--texts 4000] [--threads 2] [--batch-size 64]
        [--max-seq-length 128] [--out benchmarks/results/minilm_fast.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from benchmarks.bench_extraction import agreement, cpu_summary, load_average
from featurestore.embeddings import embedding_arrays
from featurestore.simulate import SimConfig, simulate_world
from models.encoders import create_encoder, encoder_config
from models.encoders.text import SentenceTransformerEncoder, post_text
from models.extraction import extract, merge_shards

SAMPLES = Path("/work/shared/smpd/samples/other_real_fragments.json")


class CharSortedEncoder(SentenceTransformerEncoder):
    """MiniLM batched in character-length order: the extraction order before token-length sorting."""

    def sort_keys(self, rows: list[dict]) -> np.ndarray:
        return np.array([len(post_text(r, self.config.template)) for r in rows], dtype=np.float64)


def simulated_posts(posts: int, seed: int = 42) -> pa.Table:
    """pid, postdate, title, tags of every post of a simulated world of ``posts`` posts, in pid order."""
    world = simulate_world(SimConfig(posts=posts, seed=seed, images=False, progress=False))
    order = np.argsort(world["pid"], kind="stable")
    pid = pa.array(np.asarray(world["pid"])[order].astype(np.int64))
    return pa.table({"pid": pid, "postdate": pid, "title": [world["titles"][i] for i in order],
                     "tags": [world["tags"][i] for i in order]})


def real_sample_texts(path: Path) -> list[str]:
    """PPCL texts of the real SMPD text records quoted in ``path`` (keys with Title and Alltags)."""
    if not path.is_file():
        return []
    records = [v for v in json.loads(path.read_text()).values() if isinstance(v, dict) and "Alltags" in v]
    return [post_text({"title": r.get("Title"), "tags": r.get("Alltags")}) for r in records]


def token_lengths(texts: list[str]) -> np.ndarray:
    """(N,) WordPiece token count of each text with [CLS] and [SEP], untruncated."""
    tokenizer = create_encoder("minilm", device="cpu", precision="fp32").tokenizer
    return np.array([len(x) for x in tokenizer(texts)["input_ids"]], dtype=np.int64)


def length_summary(lengths: np.ndarray, max_seq_length: int) -> str:
    if not len(lengths):
        return "none"
    p = np.percentile(lengths, [50, 90, 95, 99])
    return (f"n {len(lengths)}; p50 {p[0]:.0f}, p90 {p[1]:.0f}, p95 {p[2]:.0f}, p99 {p[3]:.0f}, max {lengths.max()}; "
            f"{(lengths > max_seq_length).mean():.2%} longer than {max_seq_length}")


def variants(batch_size: int, max_seq_length: int) -> list[tuple[str, dict, type | None]]:
    """(label, minilm overrides, encoder class or None for the registry's) of each timed run; the first is
    the baseline."""
    fast = {"sort_by_length": True, "max_seq_length": max_seq_length, "batch_size": batch_size}
    old = {"max_seq_length": 256, "batch_size": 256}
    tail = f"token-length order, ≤{max_seq_length} tok, batch {batch_size}"
    return [("fp32, pid order, ≤256 tok, batch 256", {**old, "precision": "fp32", "sort_by_length": False}, None),
            ("fp32, char-length order, ≤256 tok, batch 256", {**old, "precision": "fp32"}, CharSortedEncoder),
            *[(f"{p}, {tail}", {**fast, "precision": p}, None) for p in ("fp32", "int8", "bf16")]]


def make_encoder(overrides: dict, cls: type | None):
    overrides = {"device": "cpu", "num_workers": 0, **overrides}
    return create_encoder("minilm", **overrides) if cls is None else cls(encoder_config("minilm", **overrides))


def timed_extraction(encoder, inputs: pa.Table, warmup: int) -> tuple[float, float, np.ndarray]:
    """Wall seconds and CPU seconds (this process, all threads) of ``extract`` over ``inputs`` in one shard,
    after an untimed warm-up extraction of its first ``warmup`` rows, and the (N, D) embeddings."""
    with tempfile.TemporaryDirectory(prefix="bench_minilm_fast_") as tmp:
        warm = inputs.slice(0, max(1, min(inputs.num_rows, warmup)))
        extract(encoder, None, Path(tmp) / "warmup", shard_size=warm.num_rows, progress=False, inputs=warm)
        wall, cpu = time.perf_counter(), time.process_time()
        extract(encoder, None, Path(tmp) / "run", shard_size=inputs.num_rows, progress=False, inputs=inputs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        _, _, emb = embedding_arrays(merge_shards(Path(tmp) / "run", inputs))
    return wall, cpu, emb


def measure(inputs: pa.Table, runs: list[tuple[str, dict, type | None]], threads: list[int], warmup: int,
            k: int) -> list[dict]:
    """One row per (run, thread count): texts/s, speed-up over the first run, agreement with the first run."""
    before, rows = torch.get_num_threads(), []
    try:
        for t in threads:
            torch.set_num_threads(t)
            ref = None
            for label, overrides, cls in runs:
                seconds, cpu, emb = timed_extraction(make_encoder(overrides, cls), inputs, warmup)
                ref = ref or (seconds, emb)
                rows.append({"variant": label, "threads": t, "n": len(emb), "seconds": seconds,
                             "per_s": len(emb) / seconds, "per_cpu_s": len(emb) / cpu, "speedup": ref[0] / seconds,
                             **agreement(ref[1], emb, k)})
                print(f"{label} x{t}: {rows[-1]['per_s']:.1f} texts/s, cos min {rows[-1]['cos_min']:.5f}", flush=True)
    finally:
        torch.set_num_threads(before)
    return rows


def markdown_table(rows: list[dict], k: int) -> str:
    head = ["variant", "threads", "n", "s", "texts/s", "texts/CPU-s", "× baseline", "cos mean", "cos min",
            f"top-{k} overlap"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], str(r["threads"]), str(r["n"]), f"{r['seconds']:.2f}", f"{r['per_s']:.1f}",
                 f"{r['per_cpu_s']:.1f}",
                 f"{r['speedup']:.2f}", f"{r['cos_mean']:.6f}", f"{r['cos_min']:.6f}", f"{r['overlap']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_minilm_fast", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=4000, help="number of simulated texts timed per variant")
    p.add_argument("--posts", type=int, default=32000, help="posts of the simulated world (token lengths: all)")
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",") if x], default=[2],
                   help="torch CPU thread counts, comma-separated")
    p.add_argument("--batch-size", type=int, default=64, help="rows per batch of the token-sorted variants")
    p.add_argument("--max-seq-length", type=int, default=128, help="truncation of the token-sorted variants")
    p.add_argument("--warmup", type=int, default=64, help="rows of the untimed warm-up extraction before each run")
    p.add_argument("--k", type=int, default=10, help="top-k cosine neighbours compared with the baseline")
    p.add_argument("--samples", type=Path, default=SAMPLES, help="real SMPD records (JSON) for token lengths")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/minilm_fast.md"),
                   help="Markdown report to write ('' to skip)")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    t0, load_at_start = time.perf_counter(), load_average()
    posts = simulated_posts(max(args.posts, args.texts))
    texts = [post_text(r) for r in posts.select(["title", "tags"]).to_pylist()]
    lengths = {"simulated posts": token_lengths(texts), f"real SMPD records ({args.samples.name})":
               token_lengths(real_sample_texts(args.samples)) if real_sample_texts(args.samples) else np.array([])}
    rows = measure(posts.slice(0, args.texts), variants(args.batch_size, args.max_seq_length), args.threads,
                   args.warmup, args.k)
    command = "python -m benchmarks.bench_minilm_fast" + ("" if not argv else " " + shlex.join(argv))
    text = "\n".join([
        "# MiniLM fast path: token-length sorting, truncation, int8 / bf16", "", f"`{command}`", "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}; torch {torch.__version__}",
        f"- CPU: {cpu_summary()}",
        f"- load average (1, 5, 15 min): {load_at_start} at the start, {load_average()} at the end",
        f"- whole benchmark {time.perf_counter() - t0:.0f} s; texts: the first {args.texts} simulated posts by pid",
        *[f"- token lengths, {name}: {length_summary(v, args.max_seq_length)}" for name, v in lengths.items()], "",
        markdown_table(rows, args.k), "",
        "texts/s: rows of `models.extraction.extract` (one shard: sort keys, batches, shard write) per wall second, "
        "after an untimed warm-up; texts/CPU-s: per CPU second of this process (all its threads; with 1 thread "
        "it is about what one uncontended core would do, whatever else runs on the machine); × baseline and "
        "agreement are relative to the first row of the same thread count "
        f"(cos: per-row cosine; top-{args.k} overlap: mean share of each text's {args.k} nearest texts kept).", ""])
    print(text)
    if str(args.out) not in ("", "."):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
