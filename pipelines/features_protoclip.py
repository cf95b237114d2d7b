"""Stage features_protoclip (optional): prototype-CLIP head features ``pclip_*`` of every post.

The head (models/protoclip: diverse per-subcategory prototypes, adapters, cross-modal fusion)
reads the image statistics, the MiniLM text embedding and the subcategory code; it is fitted
on the labelled train posts only, early-stopped on the latest part of the train period by
default (no val label reaches the table), and cross-fitted so a train post's row never comes
from a head that saw its label. Writes data/finetuned/protoclip.parquet, the head and
reports/features_protoclip.json. It runs only when a model reads ``features_protoclip``
(``smpp run`` selects it; DVC: ``pipelines/optional/dvc.yaml``).
"""

from __future__ import annotations

import logging

import joblib
import pyarrow.parquet as pq

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from featurestore.paths import Paths
from models.protoclip.table import ProtoClipFeaturesConfig, fit_protoclip
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS: tuple[str, ...] = ("features_protoclip",)
TABLE = "features_protoclip"
MODEL = "data/models/protoclip.joblib"


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(ProtoClipFeaturesConfig, PARAMS[0], params.get(PARAMS[0]))
    table, head, info = fit_protoclip(paths.root, cfg)
    out = paths.table(TABLE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    (paths.root / MODEL).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(paths.root / MODEL) as tmp:
        joblib.dump(head, tmp)
    write_json(paths.reports / "features_protoclip.json", info)
    log.info("features_protoclip: %d posts x %d columns; head val %s (%.1f s)", table.num_rows,
             table.num_columns - 2, info["head_metrics"]["val"], info["seconds"])
    return info


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
