"""The ``image_stats`` feature group: engineered statistics of every post's image.

Each JPEG is decoded at reduced size (libjpeg DCT scaling through ``Image.draft``, then a
shrink to at most ``decode_size`` px; ``featurestore.image_decode``) and measured by the pure
functions of ``featurestore.image_measures``; width, height and file size are the original
file's. Images are processed in chunks by the current executor (local: a pool of ``workers``
spawned processes; Ray: an actor pool), results in input order, so the table is the same for any
executor, ``workers`` and ``chunk_size``. A missing,
undecodable or too large image (header above ``max_pixels``, refused before decoding) is counted
and flagged (``img_missing`` = 1, every statistic null), never fatal. A path that leaves the image
root (absolute, or ``..`` past it) is never opened: ingest rejects such rows, and this stage checks
again. Ingest counts the files that exist; this stage counts the ones that decode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from featurestore.executor import current_executor
from featurestore.image_decode import COLUMNS, CORRUPT, MAX_PIXELS, MISSING, OK, OUTSIDE, TOO_LARGE, worker_settings
from featurestore.image_worker import ChunkStats
from featurestore.ingest import image_path

log = logging.getLogger(__name__)
N_EXAMPLES = 5  # pids listed per kind of bad image in the summary

__all__ = ["COLUMNS", "ImageStatsConfig", "build_image_stats", "compute_rows", "image_stats_features",
           "image_stats_table", "posts_image_stats"]


@dataclass(frozen=True)
class ImageStatsConfig:
    decode_size: int = 256         # longest side (px) the statistics are computed at
    workers: int = 2               # processes; 1 runs in the calling process
    chunk_size: int = 64           # images per task sent to a worker
    faces: bool = True             # run the Haar face detector (img_face_count is null when False)
    face_size: int = 192           # longest side (px) of the face-detection image; faces < 24 px there are missed
    progress: bool = True          # tqdm progress bar on stderr
    image_root: str | None = None  # directory the image paths are relative to (default: the SMPD dir)
    max_pixels: int = MAX_PIXELS   # header width x height above this: refused undecoded, counted too_large

    def __post_init__(self) -> None:
        if self.decode_size < 16 or self.face_size < 24:
            raise ValueError("features_image_stats: decode_size must be >= 16 and face_size >= 24")
        if self.max_pixels < 1:
            raise ValueError("features_image_stats: max_pixels must be >= 1")
        if self.workers < 1 or self.chunk_size < 1:
            raise ValueError("features_image_stats: workers and chunk_size must be >= 1")


def compute_rows(paths: list[str | None], cfg: ImageStatsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Statuses ``(N,)`` int8 and values ``(N, len(COLUMNS))`` float64 for image files, in input order.

    Chunks of ``chunk_size`` files are mapped by the current executor (``featurestore.executor``):
    locally in ``workers`` spawned processes, on Ray by an actor pool; results in input order, so
    the table does not depend on where a chunk ran.
    """
    settings = {"decode_size": cfg.decode_size, "faces": cfg.faces, "face_size": cfg.face_size,
                "max_pixels": cfg.max_pixels}
    statuses, values = [np.empty(0, np.int8)], [np.empty((0, len(COLUMNS)))]
    with worker_settings(cfg.max_pixels), tqdm(total=len(paths), desc="image_stats", unit="img",
                                               disable=not cfg.progress, mininterval=1.0) as bar:
        sizes = [min(cfg.chunk_size, len(paths) - i) for i in range(0, len(paths), cfg.chunk_size)]
        results = current_executor().map_batches(ChunkStats, paths, cfg.chunk_size, shared=settings,
                                                 workers=cfg.workers, on_result=lambda i: bar.update(sizes[i]))
    for s, v in results:
        statuses.append(s)
        values.append(v)
    return np.concatenate(statuses), np.concatenate(values)


def count_statuses(statuses: np.ndarray, pids: np.ndarray, n_examples: int = N_EXAMPLES) -> dict:
    """Counts of image outcomes ``(N,)`` and the first pids of each bad kind.

    ``processed + missing + corrupt = images``; ``present = processed + corrupt`` (the file exists);
    ``too_large`` is part of ``corrupt`` and ``outside_root`` part of ``missing``.
    """
    n = {s: int((statuses == s).sum()) for s in (OK, MISSING, CORRUPT, TOO_LARGE, OUTSIDE)}
    kinds = {"missing": (MISSING, OUTSIDE), "corrupt": (CORRUPT, TOO_LARGE), "too_large": (TOO_LARGE,),
             "outside_root": (OUTSIDE,)}
    return {"images": len(statuses), "processed": n[OK], "present": n[OK] + n[CORRUPT] + n[TOO_LARGE],
            "missing": n[MISSING] + n[OUTSIDE], "corrupt": n[CORRUPT] + n[TOO_LARGE], "too_large": n[TOO_LARGE],
            "outside_root": n[OUTSIDE],
            "examples": {k: pids[np.isin(statuses, v)][:n_examples].tolist() for k, v in kinds.items()}}


def image_stats_table(images: pa.Table, root: Path, cfg: ImageStatsConfig) -> tuple[pa.Table, dict]:
    """Statistics of every image of an ``images`` table (pid, path relative to ``root``; null path = missing).

    Returns ``(table, summary)``: ``pid`` and the float64 ``COLUMNS``, one row per input row,
    sorted by pid, with null where a value does not exist (NaN in numpy); summary: the counts of
    ``count_statuses`` (with example pids), ``max_pixels`` and the throughput ``images_per_s``.
    """
    images = images.sort_by("pid")
    rel = images["path"].to_pylist()
    paths = [image_path(str(root), p) for p in rel]
    outside = np.array([f is None and p is not None for f, p in zip(paths, rel)], dtype=bool)
    t0 = time.perf_counter()
    statuses, values = compute_rows(paths, cfg)
    seconds = time.perf_counter() - t0
    statuses[outside] = OUTSIDE
    table = pa.table({"pid": images["pid"].cast(pa.int64()),
                      **{c: pa.array(values[:, j], pa.float64(), from_pandas=True) for j, c in enumerate(COLUMNS)}})
    summary = {**count_statuses(statuses, table["pid"].to_numpy()), "max_pixels": cfg.max_pixels,
               "seconds": round(seconds, 3), "images_per_s": round(len(paths) / seconds, 1) if seconds > 0 else None}
    return table, summary


def posts_image_stats(posts: pa.Table, images: pa.Table, smpd_dir: Path, cfg: ImageStatsConfig
                      ) -> tuple[pa.Table, dict]:
    """``pid``, ``postdate`` and ``COLUMNS`` of ``posts`` (pid, postdate; sorted by pid) from their rows
    of ``images`` (pid, path; a post without one counts as missing), paths relative to
    ``cfg.image_root`` or else ``smpd_dir``. Returns ``(table, summary)`` (``image_stats_table``)."""
    posts = posts.join(images.select(["pid", "path"]), "pid", join_type="left outer").sort_by("pid")
    root = Path(cfg.image_root) if cfg.image_root else Path(smpd_dir)
    stats, summary = image_stats_table(posts.select(["pid", "path"]), root, cfg)
    return pa.table({"pid": stats["pid"], "postdate": posts["postdate"], **{c: stats[c] for c in COLUMNS}}), summary


def build_image_stats(paths, cfg: ImageStatsConfig) -> tuple[pa.Table, dict]:
    """``pid``, ``postdate`` and ``COLUMNS`` for every ingested post of a run (``featurestore.paths.Paths``).

    A post without a row in the ``images`` table counts as missing. Returns ``(table, summary)``.
    """
    posts = pq.read_table(paths.table("posts"), columns=["pid", "postdate"])
    images = pq.read_table(paths.table("images"), columns=["pid", "path"])
    table, summary = posts_image_stats(posts, images, paths.smpd_dir, cfg)
    log.info("image_stats: %(images)d images: %(processed)d processed, %(missing)d missing, %(corrupt)d corrupt "
             "(%(images_per_s)s images/s)", summary)
    if summary["corrupt"] or summary["outside_root"]:
        log.warning("image_stats: %d of %d image files could not be decoded (%d over max_pixels %d), %d paths "
                    "outside the image root; rows flagged img_missing = 1; example pids %s",
                    summary["corrupt"], summary["present"], summary["too_large"], cfg.max_pixels,
                    summary["outside_root"], summary["examples"])
    return table, summary


def image_stats_features(paths, cfg: ImageStatsConfig) -> pa.Table:
    """The feature-group builder (``FeatureGroup(build=...)``): the table of ``build_image_stats``."""
    return build_image_stats(paths, cfg)[0]
