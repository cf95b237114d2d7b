"""Batched, sharded, resumable embedding extraction for any registered encoder.

    summary = extract(encoder, paths, shard_dir, shard_size=4096)   # writes shard-00000.parquet, ...
    table = merge_shards(shard_dir, encoder.read_inputs(paths))      # pid, postdate, embedding (sorted)

The posts (``encoder.read_inputs``, sorted by pid) are cut into fixed shards of ``shard_size``
rows; shard s holds rows [s * shard_size, (s + 1) * shard_size). A shard file
(``pid int64, embedding fixed_size_list<float32>[D]``) is written to a temporary name and
renamed, so it is either complete or absent: a killed run resumes at the first missing shard,
with no duplicates and no gaps. ``manifest.json`` fingerprints the encoder config, the shard
layout and the inputs; when any of them changed the old shards are discarded.

Inside a shard, rows are batched in ``encoder.sort_keys`` order (token count: less padding) and the
embeddings are written back in pid order; the keys and batches of a shard depend on that shard's
rows only, never on which shards are done, so a resumed run computes every row in the same batch
as an uninterrupted one: same vectors, bit for bit, on a fixed device.
Preprocessing (JPEG decoding) runs in ``num_workers`` DataLoader processes; the model runs in
this one under ``torch.inference_mode`` (fp16 autocast on CUDA by default).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from featurestore.embeddings import EMBEDDING_COLUMN, embedding_table
from featurestore.executor import current_executor
from models.encoders.registry import Encoder, create_encoder, resolve_device

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


class _Rows(Dataset):
    """Row i of the inputs -> (i, preprocess(row i)); what DataLoader workers run."""

    def __init__(self, rows: list[dict], preprocess: Callable[[dict], object]):
        self.rows, self.preprocess = rows, preprocess

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, object]:
        return i, self.preprocess(self.rows[i])


def _as_lists(batch: list[tuple[int, object]]) -> tuple[list[int], list[object]]:
    return [i for i, _ in batch], [x for _, x in batch]


def shard_path(shard_dir: Path, s: int) -> Path:
    return Path(shard_dir) / f"shard-{s:05d}.parquet"


def fingerprint(encoder: Encoder, inputs: pa.Table, shard_size: int) -> dict:
    """What the shards of a directory were computed from; resuming requires all of it to match."""
    h = hashlib.md5()
    for batch in inputs.combine_chunks().to_batches():
        for col in batch.columns:
            for buf in col.buffers():
                if buf is not None:
                    h.update(buf)
    config = {k: v for k, v in asdict(encoder.config).items() if k not in ("num_workers", "device")}
    return {"encoder": encoder.name, "config": config, "shard_size": shard_size, "rows": inputs.num_rows,
            "inputs_md5": h.hexdigest()}


def _prepare_dir(shard_dir: Path, manifest: dict) -> None:
    """Create ``shard_dir``; drop temporary files, and every shard when the manifest differs."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    for tmp in shard_dir.glob("*.tmp*"):
        tmp.unlink()
    path = shard_dir / MANIFEST
    old = json.loads(path.read_text()) if path.is_file() else None
    if old != json.loads(json.dumps(manifest, default=str)):
        stale = sorted(shard_dir.glob("shard-*.parquet"))
        if stale:
            log.warning("%s: inputs or encoder config changed; discarding %d old shards", shard_dir, len(stale))
        for f in stale:
            f.unlink()
        _atomic_write(path, lambda f: f.write(json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()))


def _atomic_write(path: Path, write: Callable) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the complete new one


def _shard_rows(s: int, shard_size: int, n: int) -> np.ndarray:
    """Row indices of shard s: [s * shard_size, min((s + 1) * shard_size, n))."""
    return np.arange(s * shard_size, min((s + 1) * shard_size, n))


def _done_shards(shard_dir: Path, pids: np.ndarray, shard_size: int, n_shards: int) -> set[int]:
    """Shards already on disk whose pids are exactly their slice (anything else is rewritten)."""
    done = set()
    for s in range(n_shards):
        path = shard_path(shard_dir, s)
        if path.is_file():
            got = pq.read_table(path, columns=["pid"])["pid"].to_numpy()
            if np.array_equal(got, pids[_shard_rows(s, shard_size, len(pids))]):
                done.add(s)
            else:
                log.warning("%s does not hold its slice of posts; recomputing it", path)
    return done


def _batches(sort_keys: Callable[[np.ndarray], np.ndarray], n: int, shards: list[int], shard_size: int,
             batch_size: int) -> list[list[int]]:
    """Row-index batches of the given shards of ``n`` rows: each shard in ``sort_keys(its rows)`` order
    (stable: ties keep pid order), cut every ``batch_size``."""
    out = []
    for s in shards:
        rows = _shard_rows(s, shard_size, n)
        rows = rows[np.argsort(sort_keys(rows), kind="stable")]
        out += [rows[i:i + batch_size].tolist() for i in range(0, len(rows), batch_size)]
    return out


def _write_shard(shard_dir: Path, s: int, idx: np.ndarray, emb: np.ndarray, pids: np.ndarray) -> None:
    order = np.argsort(idx)  # back to pid order
    flat = pa.array(np.ascontiguousarray(emb[order], dtype=np.float32).ravel(), pa.float32())
    table = pa.table({"pid": pa.array(pids[idx[order]], pa.int64()),
                      EMBEDDING_COLUMN: pa.FixedSizeListArray.from_arrays(flat, emb.shape[1])})
    _atomic_write(shard_path(shard_dir, s), lambda f: pq.write_table(table, f, compression="zstd"))


def _run(encoder: Encoder, inputs: pa.Table, shard_dir: Path, todo: list[int], shard_size: int, progress: bool,
         on_shard: Callable[[int, int], None] | None, n_todo: int) -> None:
    """Embed the rows of the ``todo`` shards, writing each shard as soon as its last batch is done."""
    pids = inputs["pid"].to_numpy()
    rows = inputs.drop_columns(["postdate"]).to_pylist()

    def keys(idx: np.ndarray) -> np.ndarray:  # asked for the shards to do only (tokenising is not free)
        return encoder.sort_keys([rows[i] for i in idx])

    batches = _batches(keys, len(rows), todo, shard_size, encoder.config.batch_size)
    loader = DataLoader(_Rows(rows, encoder.preprocessor()), batch_sampler=batches, collate_fn=_as_lists,
                        num_workers=encoder.config.num_workers, pin_memory=encoder.device.type == "cuda")
    n_shards = -(-len(pids) // shard_size)
    pending_idx: list[np.ndarray] = []
    pending_emb: list[np.ndarray] = []
    with torch.inference_mode(), tqdm(total=n_todo, desc=f"embed {encoder.name}", unit="post",
                                      disable=not progress) as bar:
        for idx, items in loader:  # batches come shard by shard, in order
            pending_idx.append(np.asarray(idx))
            pending_emb.append(encoder.encode(items).numpy())
            bar.update(len(idx))
            s = int(pending_idx[0][0]) // shard_size
            if sum(len(i) for i in pending_idx) == len(_shard_rows(s, shard_size, len(pids))):
                _write_shard(shard_dir, s, np.concatenate(pending_idx), np.concatenate(pending_emb), pids)
                pending_idx, pending_emb = [], []
                if on_shard is not None:
                    on_shard(s, n_shards)


def _child(encoder: Encoder, inputs: pa.Table, shard_dir: Path, shards: list[int], shard_size: int,
           threads: int) -> None:
    """An extraction process: the (pickled) encoder on ``shards`` only, with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    n = sum(len(_shard_rows(s, shard_size, inputs.num_rows)) for s in shards)
    _run(encoder, inputs, shard_dir, shards, shard_size, False, None, n)


def _run_processes(encoder: Encoder, inputs: pa.Table, shard_dir: Path, todo: list[int], shard_size: int,
                   progress: bool, on_shard: Callable[[int, int], None] | None, n_todo: int, processes: int) -> None:
    """``_run`` over ``processes`` forked children (shards dealt round-robin); progress from the shard files.

    Spawned, not forked (a fork of a process whose OpenMP/tokeniser thread pools have run can
    hang): each child gets the encoder pickled, model included. A child that fails leaves only
    whole shards behind, so a rerun resumes; its exit code is raised here.
    """
    ctx = mp.get_context("spawn")
    n, n_shards = inputs.num_rows, -(-inputs.num_rows // shard_size)
    shares = [todo[w::processes] for w in range(min(processes, len(todo)))]
    children = [ctx.Process(target=_child, args=(encoder, inputs, shard_dir, share, shard_size,
                                                  torch.get_num_threads()), daemon=False) for share in shares]
    seen: set[int] = set()
    with tqdm(total=n_todo, desc=f"embed {encoder.name} ({len(children)} processes)", unit="post",
              disable=not progress) as bar:
        try:
            for child in children:
                child.start()
            while True:
                alive = [c for c in children if c.is_alive()]
                for s in todo:
                    if s not in seen and shard_path(shard_dir, s).is_file():
                        seen.add(s)
                        bar.update(len(_shard_rows(s, shard_size, n)))
                        if on_shard is not None:
                            on_shard(s, n_shards)
                if not alive:
                    break
                time.sleep(0.5)
        finally:
            for child in children:
                if child.is_alive():
                    child.terminate()
                child.join()
    failed = [c.exitcode for c in children if c.exitcode != 0]
    if failed or len(seen) != len(todo):
        raise RuntimeError(f"{shard_dir}: {len(failed)} of {len(children)} extraction processes failed "
                           f"(exit codes {failed}); {len(todo) - len(seen)} shards missing; rerun to resume")


class ShardWorker:
    """An executor worker (a Ray actor): rebuilds the encoder from its config where it runs (one model
    load, its own device: a GPU actor gets CUDA), then embeds whole shards, each written atomically."""

    def __init__(self, config, inputs: pa.Table, shard_dir: str, shard_size: int, threads: int):
        torch.set_num_threads(threads)
        self.encoder = create_encoder(config.name, **{f.name: getattr(config, f.name) for f in fields(config)
                                                       if f.init and f.name != "name"})
        self.inputs, self.shard_dir, self.shard_size = inputs, Path(shard_dir), shard_size

    def __call__(self, shards: list[int]) -> list[int]:
        """Embed and write ``shards``; returns them."""
        n = sum(len(_shard_rows(s, self.shard_size, self.inputs.num_rows)) for s in shards)
        _run(self.encoder, self.inputs, self.shard_dir, list(shards), self.shard_size, False, None, n)
        return list(shards)


def _run_executor(executor, encoder: Encoder, inputs: pa.Table, shard_dir: Path, todo: list[int], shard_size: int,
                  progress: bool, on_shard: Callable[[int, int], None] | None) -> None:
    """The ``todo`` shards as batches of one shard each, mapped by ``executor``'s workers (``ShardWorker``)."""
    n, n_shards = inputs.num_rows, -(-inputs.num_rows // shard_size)
    shared = {"config": encoder.config, "inputs": inputs, "shard_dir": str(shard_dir), "shard_size": shard_size,
              "threads": torch.get_num_threads()}
    with tqdm(total=sum(len(_shard_rows(s, shard_size, n)) for s in todo), desc=f"embed {encoder.name} "
              f"({executor.name})", unit="post", disable=not progress) as bar:
        def done(i: int) -> None:
            bar.update(len(_shard_rows(todo[i], shard_size, n)))
            if on_shard is not None:
                on_shard(todo[i], n_shards)

        executor.map_batches(ShardWorker, todo, 1, shared=shared, gpu=True, on_result=done)


def extract(encoder: Encoder, paths, shard_dir: Path, *, shard_size: int = 4096, progress: bool = True,
            inputs: pa.Table | None = None, on_shard: Callable[[int, int], None] | None = None,
            processes: int = 1) -> dict:
    """Embed every post of ``paths`` into shards under ``shard_dir``, resuming what is there.

    ``processes`` > 1 (CPU only): the shards to do are dealt round-robin to that many spawned
    processes, each running the model on its own shards with this process's torch thread count;
    a shard's vectors do not depend on which process computed it. ``on_shard`` then runs here as
    each shard file appears. Under a distributed current executor (``compute.executor: ray``) the
    shards are its batches instead: one ``ShardWorker`` actor per CPU or GPU, ``processes`` unused;
    an actor that dies leaves only whole shards, and its shard is retried or a rerun resumes.

    ``on_shard(s, n_shards)`` runs after shard s is on disk. Returns a summary: rows, dim,
    shards, shards_reused, rows_computed, seconds, rows_per_s (of the rows computed now).
    """
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    shard_dir = Path(shard_dir)
    inputs = encoder.read_inputs(paths) if inputs is None else inputs
    pids = inputs["pid"].to_numpy()
    n_shards = -(-len(pids) // shard_size)
    _prepare_dir(shard_dir, fingerprint(encoder, inputs, shard_size))
    done = _done_shards(shard_dir, pids, shard_size, n_shards)
    todo = [s for s in range(n_shards) if s not in done]
    n_todo = sum(len(_shard_rows(s, shard_size, len(pids))) for s in todo)
    t0 = time.perf_counter()
    executor = current_executor()
    if todo and executor.name != "local":
        _run_executor(executor, encoder, inputs, shard_dir, todo, shard_size, progress, on_shard)
    elif todo and processes > 1 and len(todo) > 1 and encoder.device.type == "cpu":
        _run_processes(encoder, inputs, shard_dir, todo, shard_size, progress, on_shard, n_todo, processes)
    elif todo:
        _run(encoder, inputs, shard_dir, todo, shard_size, progress, on_shard, n_todo)
    seconds = time.perf_counter() - t0
    return {"rows": len(pids), "dim": encoder.dim, "shards": n_shards, "shards_reused": len(done),
            "rows_computed": n_todo, "seconds": round(seconds, 2),
            "rows_per_s": round(n_todo / seconds, 1) if n_todo and seconds > 0 else None}


def merge_shards(shard_dir: Path, inputs: pa.Table) -> pa.Table:
    """The shards of ``shard_dir`` as one embedding table (pid, postdate, embedding) sorted by pid.

    Raises ValueError unless every pid of ``inputs`` is there exactly once.
    """
    files = sorted(Path(shard_dir).glob("shard-*.parquet"))
    if not files:
        raise ValueError(f"{shard_dir}: no shards")
    table = pa.concat_tables(pq.read_table(f) for f in files)  # shard order = pid order
    pids, want = table["pid"].to_numpy(), inputs["pid"].to_numpy()
    if not np.array_equal(pids, want):
        raise ValueError(f"{shard_dir}: shards hold {len(pids)} rows ({len(np.unique(pids))} distinct pids) "
                         f"for {len(want)} posts; rerun the extraction to fill the gaps")
    col = table[EMBEDDING_COLUMN].combine_chunks()
    emb = col.flatten().to_numpy().reshape(len(table), col.type.list_size)
    return embedding_table(pids, inputs["postdate"].to_numpy(), emb)


@dataclass(frozen=True)
class EmbedConfig:
    """A ``embed_<encoder>`` stage's params: extraction settings plus encoder overrides."""

    shard_size: int = 4096
    batch_size: int = 256
    num_workers: int = 0          # DataLoader processes (JPEG decoding); 0 for texts
    gpu_batch_size: int | None = None   # batch_size when the device is CUDA (None: batch_size)
    gpu_num_workers: int | None = None  # num_workers when the device is CUDA (None: num_workers)
    device: str = "auto"          # auto: CUDA when available
    precision: str = "auto"       # auto: fp16 on CUDA, fp32 on CPU (text: bf16 on AMX CPUs); fp32/bf16/fp16; text: int8
    weights: str | None = None    # None: the registry entry's default (e.g. the bundled MiniLM)
    progress: bool = True
    threads: int | None = None    # torch CPU threads (None: torch's default); 1 is faster on a busy 2-core box
    processes: int = 1            # CPU: extraction processes, each with ``threads`` threads, shards dealt round-robin
    options: dict = field(default_factory=dict)  # more encoder config overrides, e.g. {max_seq_length: 128}

    def overrides(self) -> dict:
        """Encoder config overrides; on CUDA the ``gpu_*`` batch size and worker count where they are set."""
        cuda = resolve_device(self.device).type == "cuda"
        batch = self.gpu_batch_size if cuda and self.gpu_batch_size else self.batch_size
        workers = self.gpu_num_workers if cuda and self.gpu_num_workers is not None else self.num_workers
        out = {"batch_size": batch, "num_workers": workers, "device": self.device, "precision": self.precision,
               **self.options}
        return out if self.weights is None else {**out, "weights": self.weights}


_LOADED: dict[str, Encoder] = {}  # (name, overrides) -> encoder, for processes that embed again and again


def loaded_encoder(encoder_name: str, overrides: dict) -> Encoder:
    """``create_encoder(encoder_name, **overrides)``, loaded once per process and configuration.

    For long-running callers (``smpp serve``: every request embeds its new posts); the cache
    holds at most two encoders (the least recently created is dropped).
    """
    key = json.dumps([encoder_name, overrides], sort_keys=True, default=str)
    if key not in _LOADED:
        while len(_LOADED) >= 2:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = create_encoder(encoder_name, **overrides)
    return _LOADED[key]


def embed_posts(paths, encoder_name: str, cfg: EmbedConfig, shard_dir: Path, *,
                reuse_encoder: bool = False) -> tuple[pa.Table, dict]:
    """Extract (resuming) and merge: the ``embed_<encoder>`` table of every post, and the summary.

    ``cfg.threads`` holds for this call only (stages may share a process under ``smpp run``).
    ``reuse_encoder``: take the encoder from this process's cache (``loaded_encoder``) instead
    of loading it for this call.
    """
    before = torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        make = loaded_encoder if reuse_encoder else lambda name, over: create_encoder(name, **over)
        encoder = make(encoder_name, cfg.overrides())
        inputs = encoder.read_inputs(paths)
        summary = extract(encoder, paths, shard_dir, shard_size=cfg.shard_size, progress=cfg.progress, inputs=inputs,
                          processes=cfg.processes)
    finally:
        torch.set_num_threads(before)
    return merge_shards(shard_dir, inputs), {**summary, "device": str(encoder.device),
                                              "precision": encoder.config.precision, "threads": cfg.threads,
                                              "processes": cfg.processes if encoder.device.type == "cpu" else 1}
