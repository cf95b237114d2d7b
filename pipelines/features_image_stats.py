"""Stage features_image_stats: engineered image statistics of every post (brightness, colourfulness, sharpness, composition, faces, ...)."""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.image_stats import ImageStatsConfig, build_image_stats
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main

PARAMS: tuple[str, ...] = ("features_image_stats",)
TABLE = "features_image_stats"

log = logging.getLogger(__name__)


def run(paths: Paths, params: dict) -> dict:
    """Build and write the image_stats table; returns the summary (images, processed, missing, corrupt, ...)."""
    t0 = time.perf_counter()
    cfg = config_from_dict(ImageStatsConfig, PARAMS[0], params.get(PARAMS[0]))
    table, summary = build_image_stats(paths, cfg)
    out = paths.table(TABLE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    log.info("features_image_stats: %d posts x %d features (%.1f s)", table.num_rows, table.num_columns - 2,
             time.perf_counter() - t0)
    return {**summary, "rows": table.num_rows}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
