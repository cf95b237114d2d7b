"""Stage split: chronological train/val/test of the labelled posts (params split.fractions); test-file posts -> predict.

``split.label_visible`` names the splits whose labels the features may read (point in time): ``[train]``
(default, holdout) or ``[train, val]`` (``smpp run --mode submit``: every labelled post).
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc
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
    check_something_to_predict(posts, cfg, paths)
    split = chronological_split(posts, cfg)
    out = paths.table("split")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(split, tmp, compression="zstd")
    summary = split_summary(split)
    log.info("split: %s; labels visible to features: %s", {k: v["rows"] for k, v in summary.items()},
             ", ".join(cfg.label_visible))
    return summary


def check_something_to_predict(posts: pa.Table, cfg: SplitConfig, paths: Paths) -> None:
    """Stop before any feature or model work when the run would neither evaluate nor submit:
    ``split.fractions`` keeps no labelled test posts (``smpp run --mode submit``) and there are no
    test-file posts to predict (their training would fail on an empty prediction set)."""
    if cfg.fractions[2] == 0 and pc.all(posts["labelled"]).as_py() is not False:
        raise ValueError(f"no test posts in {paths.smpd_dir} (no test files, or ingest rejected every test row): "
                         "nothing to submit; use `smpp run --mode holdout` (or a test share in split.fractions) "
                         "to train, validate and test on the labelled posts")


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
