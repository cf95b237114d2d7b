"""Stage features_image_stats: engineered image statistics of every post (brightness, colourfulness, sharpness, composition, faces, ...).

Writes data/features/image_stats.parquet and reports/features_image_stats.json: how many images
decoded (``processed``), how many files exist (``present``), are missing, are corrupt (of which
``too_large``: over ``max_pixels``, refused undecoded) or lie outside the image root, with example
pids of each. Ingest's report counts files that exist; this one counts images that decode.
"""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.image_stats import ImageStatsConfig, build_image_stats
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

PARAMS: tuple[str, ...] = ("features_image_stats",)
TABLE = "features_image_stats"

log = logging.getLogger(__name__)


def run(paths: Paths, params: dict) -> dict:
    """Build and write the image_stats table and its report; returns the report (images, processed, corrupt, ...)."""
    t0 = time.perf_counter()
    cfg = config_from_dict(ImageStatsConfig, PARAMS[0], params.get(PARAMS[0]))
    table, summary = build_image_stats(paths, cfg)
    out = paths.table(TABLE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    log.info("features_image_stats: %d posts x %d features (%.1f s)", table.num_rows, table.num_columns - 2,
             time.perf_counter() - t0)
    report = {**summary, "rows": table.num_rows}
    write_json(paths.reports / f"{TABLE}.json", report)
    return report


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
