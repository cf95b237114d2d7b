"""Stage ingest: SMPD directory -> typed Parquet tables under data/tables/ + reports/ingest_report.json.

Reads either SMPD release (2019/2020 or 2022+), both user-file forms, train and test files,
checks row alignment and Pid/Uid agreement, and accounts for every input row.
"""

from __future__ import annotations

import logging
import time

from featurestore.config import config_from_dict
from featurestore.ingest import IngestConfig, ingest_smpd, write_tables
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("ingest",)


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(IngestConfig, "ingest", params.get("ingest"))
    t0 = time.perf_counter()
    tables, report = ingest_smpd(paths.smpd_dir, cfg)
    write_tables(tables, paths.tables_dir)
    report["smpd_dir"] = str(paths.smpd_dir)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(paths.ingest_report, report)
    log.info("ingest: %d posts read, %d kept, %d rejected; images %s present of %d listed (%.1f s)",
             report["posts_read"], report["posts_kept"], report["posts_rejected"],
             report["images"]["present"], report["images"]["listed"], report["seconds"])
    return report


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
