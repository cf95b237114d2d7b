"""Stage finetune_wrcr: Weighted-Rank Contrastive Regression head on frozen MiniLM + image-statistics embeddings.

The head (per-modality projections 384/29 -> 1536 -> 128, fusion 256 -> 64, regressor 64 -> 1) is
trained with L1 + WRCR on the train split only; its 64-d penultimate layer for every post becomes
the feature table ft_0 .. ft_63 that the GBDTs read. Writes the table, the head's weights and
reports/finetune_wrcr.json (epochs, head MAE/SRC per split).
"""

from __future__ import annotations

import logging

import joblib
import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from models.finetune import FinetuneConfig, fit_finetuned
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("finetune_wrcr",)
TABLE = "features_finetuned_wrcr"
MODEL = "data/models/finetune_wrcr.joblib"  # the fitted ContrastiveRegressor


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(FinetuneConfig, PARAMS[0], params.get(PARAMS[0]))
    table, head, info = fit_finetuned(paths, cfg)
    out = paths.table(TABLE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    model = paths.root / MODEL
    model.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(model) as tmp:
        joblib.dump(head, tmp)
    write_json(paths.reports / "finetune_wrcr.json", info)
    log.info("finetune_wrcr: %d posts x %d columns; best epoch %d of %d; head val %s (%.1f s)", table.num_rows,
             table.num_columns - 2, info["best_epoch"], info["epochs"], info["head_metrics"]["val"], info["seconds"])
    return info


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
