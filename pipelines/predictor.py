"""The ``Predictor``: a finished run opened once, for ``smpp predict`` and ``smpp serve``.

It holds the run's params and value bounds, the stacked model (``data/models/stack.joblib``,
loaded once) and the run summary ``health()`` reports. ``predict(records)`` is the one code path
from post records to predictions; ``features(records)`` is the one place that builds a new post's
model inputs (``pipelines.online_features``: fitted transforms and lookups loaded once, nothing
fitted per call, a cost that does not grow with the store).

Thread safety: ``predict`` and ``similar`` may be called from many threads at once (the service's
threadpool). Input checks and warnings run unlocked; building the features and calling the model
hold one lock, and so does a similar-post lookup (its first call writes the FAISS index cache).
A batch of posts already uses every core (BLAS, LightGBM, polars run multi-threaded), and a
request of a few posts runs single-threaded (``_pools``) but for its model calls, which one side
thread shares (``models.part_runner.PartRunner``), so serialising costs little throughput and
rules out races in the libraries' global state.
Opening loads everything once (stored rows by user, fitted artefacts, the stacked model).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import joblib
import numpy as np
import polars as pl
from threadpoolctl import ThreadpoolController

from featurestore.config import config_from_dict
from featurestore.ingest import IngestConfig
from featurestore.paths import Paths
from featurestore.smpd_values import Bounds
from models.matrix import aligned_matrix
from models.part_runner import PartRunner
from pipelines.fingerprint import digest_of
from pipelines.manifest import open_run, read_manifest
from pipelines.online_features import OnlineFeatures
from pipelines.post_input import StoreSummary, post_warnings, validate_posts

log = logging.getLogger(__name__)

SMALL_REQUEST = 16  # posts; see Predictor._pools
OUTPUT_COLUMNS = ("pid", "pred", "interval_lo", "interval_hi", "image_found", "warnings")


def input_bounds(params: dict) -> Bounds:
    """The value bounds ingest used in the run with ``params`` (new posts are checked against them)."""
    return config_from_dict(IngestConfig, "ingest", params.get("ingest")).bounds()


@dataclass(frozen=True)
class ModelVersion:
    """The stack model file a Predictor loaded: ``version`` is the first 12 hex digits of its sha256."""

    path: str
    mtime: str  # ISO 8601, UTC
    sha256: str

    @property
    def version(self) -> str:
        return self.sha256[:12]

    @classmethod
    def of(cls, path: Path, data: bytes) -> ModelVersion:
        """The version of model file ``path`` whose content is ``data``."""
        mtime = datetime.fromtimestamp(Path(path).stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        return cls(path=str(path), mtime=mtime, sha256=hashlib.sha256(data).hexdigest())


class Predictor:
    """Predictions for new posts from the finished run under ``paths.root`` (model loaded once)."""

    def __init__(self, paths: Paths, params: dict, manifest: dict | None = None, *, image_process: bool = False
                 ) -> None:
        if not paths.stack_model.is_file():
            raise FileNotFoundError(f"{paths.stack_model} not found: run `dvc repro` or `smpp run` first")
        self.paths, self.params, self.manifest = paths, params, manifest
        self.bounds = input_bounds(params)
        data = paths.stack_model.read_bytes()  # read once: the version describes the very bytes loaded
        self.bundle = joblib.load(io.BytesIO(data))
        self.model = ModelVersion.of(paths.stack_model, data)
        self.online = OnlineFeatures(paths, params, tuple(self.bundle.feature_groups), image_process=image_process)
        self.store = StoreSummary.load(paths)
        self._lock = threading.Lock()
        self._threads = ThreadpoolController()  # the BLAS / OpenMP pools of the loaded libraries
        self._parts = PartRunner() if (os.cpu_count() or 1) >= 2 else None  # a small request's model calls

    @classmethod
    def open(cls, root: Path, smpd_dir: Path | None = None, params_file: Path | None = None, *,
             image_process: bool = False) -> Predictor:
        """The complete run under ``root`` (``RunRefused`` otherwise; see ``pipelines.manifest.open_run``).

        ``image_process``: measure a request's images in a helper process while the rest is built
        (a long-running service; a one-off ``smpp predict`` would pay the process start for nothing).
        """
        run = open_run(root, smpd_dir, params_file, need_smpd=True)
        return cls(Paths(root=Path(root), smpd=run.smpd_dir), run.params, run.manifest, image_process=image_process)

    def close(self) -> None:
        """Stop the helper process, if any (the Predictor still predicts, measuring images itself), and
        the model's side thread (its model calls then run one after another)."""
        self.online.close()
        if self._parts is not None:
            self._parts.close()
            self._parts = None

    @property
    def stored_posts(self) -> int:
        return len(self.online.stored.pids_sorted)

    def features(self, records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(pids, (N, F) float32 model matrix in the model's column order) of validated ``records``,
        in input order."""
        tables = self.online.rows(records)
        return tables[0]["pid"].to_numpy(), aligned_matrix(tables, self.bundle.feature_names)

    def _pools(self, n: int):
        """A request of at most ``SMALL_REQUEST`` posts runs with one BLAS / OpenMP thread: waking and
        spinning a pool costs a few posts more than it saves (one post: 2x the wall time under load,
        BENCHMARKS.md "Serving"). Results do not depend on the thread count."""
        return self._threads.limit(limits=1) if n <= SMALL_REQUEST else contextlib.nullcontext()

    def predict(self, records: list) -> pl.DataFrame:
        """pid, pred, interval_lo, interval_hi, image_found, warnings per record, in input order.

        Bad records raise ``PostInputError`` (naming post and field) before any work.
        """
        records = validate_posts(records, self.bounds)
        with self._lock, self._pools(len(records)):
            pids, X = self.features(records)
            small = self._parts is not None and len(records) <= SMALL_REQUEST  # one thread per call: two cores
            out = pl.DataFrame({"pid": pids} | self.bundle.predict(X, run=self._parts.run if small else None))
        out = pl.concat([out, post_warnings(self.store, records, out["pid"].to_list())], how="horizontal")
        flagged = [w for w in out["warnings"].to_list() if w]
        if flagged:
            log.warning("%d of %d post(s) with warnings (see the warnings column): %s", len(flagged), out.height,
                        ", ".join(sorted({c for w in flagged for c in w.split(";")})))
        return out.select(OUTPUT_COLUMNS)

    def similar(self, pid: int, k: int = 10) -> pl.DataFrame:
        """The stored post ``pid`` (rank 0) and its ``k`` most similar stored posts (``smpp similar``'s
        columns); ``KeyError`` when ``pid`` is not stored."""
        from pipelines.analysis.similar import similar_posts

        with self._lock:
            return similar_posts(self.paths.root, pid, k=k)

    def health(self) -> dict:
        """The run summary: run id, input fingerprint, params hash, code, times, model version, stored posts."""
        m = self.manifest if self.manifest is not None else (read_manifest(self.paths.root) or {})
        return {"root": str(self.paths.root), "run_id": digest_of(m)[:12] if m else None,
                "created_by": m.get("created_by"), "mode": m.get("mode"), "run_status": m.get("status"),
                "started_at": m.get("started_at"), "finished_at": m.get("finished_at"),
                "input_fingerprint": (m.get("inputs") or {}).get("hash"),
                "params_hash": digest_of(self.params)[:12], "code": m.get("code"),
                "model_version": self.model.version, "model_mtime": self.model.mtime,
                "model_sha256": self.model.sha256[:16], "stored_posts": self.stored_posts}
