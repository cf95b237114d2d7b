"""Stage features_text: title/tag counts and flags; TF-IDF + truncated SVD of title and tags, fitted on the train split.

Writes the ``features_text`` table and the fitted ``TextModel`` (``data/fitted/text_model.joblib``),
which serving loads to compute a new post's row without fitting.
"""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.feature_groups import feature_columns
from featurestore.features_text import TextConfig, build_text
from featurestore.fitted import save_fitted
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("features_text",)
TABLE = "features_text"
MODEL = "text_model.joblib"


def run(paths: Paths, params: dict) -> dict:
    t0 = time.perf_counter()
    cfg = config_from_dict(TextConfig, "features_text", params.get("features_text"))
    table, model = build_text(paths, cfg)
    with atomic_write(paths.table(TABLE)) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    save_fitted(model, paths.fitted(MODEL))
    cols = feature_columns(table)
    log.info("features_text: %d posts x %d features (%.1f s)", table.num_rows, len(cols), time.perf_counter() - t0)
    return {"rows": table.num_rows, "features": cols}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
