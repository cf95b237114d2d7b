"""What every ``features_<group>`` stage does: build the group's table and write it, with the
group's fitted relations (``data/fitted/<name>.parquet``) beside it."""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.feature_groups import build_group_with_fitted, feature_columns, get_group
from featurestore.paths import Paths

log = logging.getLogger(__name__)


def run_feature_stage(group: str, paths: Paths, params: dict) -> dict:
    t0 = time.perf_counter()
    table, fitted = build_group_with_fitted(group, paths, params)
    for name, relation in fitted.items():
        with atomic_write(paths.fitted(f"{name}.parquet")) as tmp:
            pq.write_table(relation, tmp, compression="zstd")
    with atomic_write(paths.table(get_group(group).table)) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    cols = feature_columns(table)
    log.info("features_%s: %d posts x %d features (%.1f s)", group, table.num_rows, len(cols), time.perf_counter() - t0)
    return {"rows": table.num_rows, "features": cols, "fitted": {n: r.num_rows for n, r in fitted.items()}}


def make_stage(group: str, doc: str):
    """``(run, main)`` of the stage module ``pipelines.features_<group>``."""
    from pipelines.stage_cli import stage_main

    def run(paths: Paths, params: dict) -> dict:
        return run_feature_stage(group, paths, params)

    def main(argv: list[str] | None = None) -> None:
        stage_main(doc, run, argv)

    return run, main
