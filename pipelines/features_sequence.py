"""Stage features_sequence: the k most similar strictly-earlier posts (FAISS / blocked GEMM) -> sequence features.

Writes ``features_sequence`` (GBDT inputs: visible-label and similarity statistics of the
neighbours) and ``sequence_ids`` (the top-l neighbour pids and similarities, for a sequence
head; not model inputs) from one neighbour search.
"""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.feature_groups import feature_columns
from featurestore.features_sequence import SequenceConfig, sequence_tables
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("features_sequence",)
TABLES = ("features_sequence", "sequence_ids")


def run(paths: Paths, params: dict) -> dict:
    t0 = time.perf_counter()
    cfg = config_from_dict(SequenceConfig, "features_sequence", params.get("features_sequence"))
    tables = sequence_tables(paths, cfg)
    for name, table in zip(TABLES, tables):
        out = paths.table(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    cols = feature_columns(tables[0])
    log.info("features_sequence: %d posts x %d features, k=%d over %s by %s (%.1f s)", tables[0].num_rows,
             len(cols), cfg.k, cfg.embedding, cfg.index, time.perf_counter() - t0)
    return {"rows": tables[0].num_rows, "features": cols}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
