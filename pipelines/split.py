"""Stage split: chronological train/val/test of the labelled posts (params split.fractions); test-file posts -> predict."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.split import SplitConfig, chronological_split, split_summary
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main

log = logging.getLogger(__name__)
PARAMS = ("split",)


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(SplitConfig, "split", params.get("split"))
    posts = pq.read_table(paths.table("posts"), columns=["pid", "postdate", "labelled"])
    split = chronological_split(posts, cfg)
    out = paths.table("split")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(split, tmp, compression="zstd")
    summary = split_summary(split)
    log.info("split: %s", {k: v["rows"] for k, v in summary.items()})
    return summary


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
