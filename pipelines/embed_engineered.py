"""Stage embed_engineered: text SVD + image statistics + one-hot categories -> one L2-normalised vector per post.

Means and SDs are fitted on the train split only; the table has the shape every embedding
table shares: (pid, postdate, embedding fixed_size_list<float32>[D]), sorted by pid. The fitted
``EngineeredEncoder`` is saved (``data/fitted/engineered_encoder.joblib``) for serving to load.
"""

from __future__ import annotations

import logging
import time

import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.embeddings import EMBEDDING_COLUMN, EngineeredEmbeddingConfig, build_engineered
from featurestore.fitted import save_fitted
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("embed_engineered",)
TABLE = "embed_engineered"
ENCODER = "engineered_encoder.joblib"


def run(paths: Paths, params: dict) -> dict:
    t0 = time.perf_counter()
    cfg = config_from_dict(EngineeredEmbeddingConfig, "embed_engineered", params.get("embed_engineered"))
    table, encoder = build_engineered(paths, cfg)
    out = paths.table(TABLE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    save_fitted(encoder, paths.fitted(ENCODER))
    dim = table.schema.field(EMBEDDING_COLUMN).type.list_size
    log.info("embed_engineered: %d posts x %d dims (%.1f s)", table.num_rows, dim, time.perf_counter() - t0)
    return {"rows": table.num_rows, "dim": dim}


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
