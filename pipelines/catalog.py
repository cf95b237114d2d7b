"""Stage catalog: data/catalog.duckdb with a view per table and the feature_registry table.

Run by DVC (``python -m pipelines.catalog``), the last stage of ``dvc repro``, it also records the
run manifest ``run.json`` (``pipelines.manifest.record_dvc_run``); ``smpp run`` writes its own.
"""

from __future__ import annotations

import logging

from featurestore.catalog import build_catalog
from featurestore.paths import Paths
from pipelines.manifest import MANIFEST, record_dvc_run
from pipelines.stage_cli import stage_main

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ()


def run(paths: Paths, params: dict) -> str:
    path = build_catalog(paths.root)
    log.info("catalog: %s", path)
    return str(path)


def main(argv: list[str] | None = None) -> None:
    paths, params_file = stage_main(__doc__, run, argv)
    m = record_dvc_run(paths.root, params_file, paths.smpd)
    log.info("run manifest: %s (%s)", paths.root / MANIFEST, m["status"])


if __name__ == "__main__":
    main()
