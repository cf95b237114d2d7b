"""Stage features_baseline: user metadata, posting time, category codes (train vocabulary), text lengths."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from featurestore.features_baseline import baseline_features, feature_columns
from pipelines.paths import Paths
from pipelines.stage import stage_main

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ()


def run(paths: Paths, params: dict) -> dict:
    table = baseline_features(paths.root)
    out = paths.table("features_baseline")
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    log.info("features_baseline: %d posts x %d features", table.num_rows, len(feature_columns(table)))
    return {"rows": table.num_rows, "features": feature_columns(table)}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
