"""Stage catalog: data/catalog.duckdb with a view per table and the feature_registry table."""

from __future__ import annotations

import logging

from featurestore.catalog import build_catalog
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ()


def run(paths: Paths, params: dict) -> str:
    path = build_catalog(paths.root)
    log.info("catalog: %s", path)
    return str(path)


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
