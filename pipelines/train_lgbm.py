"""Stage train_lgbm: LightGBM on the selected feature groups, early-stopped on val -> predictions for every post."""

from __future__ import annotations

import logging


from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from models.train_gbdt import TrainConfig, fit_predict
from pipelines.model_inputs import load_inputs
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("train_lgbm",)


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(TrainConfig, "train_lgbm", params.get("train_lgbm"))
    frame, names, _, _ = load_inputs(paths, cfg.feature_groups)
    preds, model, info = fit_predict(frame, names, cfg)
    out = paths.table("predictions")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        preds.write_parquet(tmp, compression="zstd")
    paths.model.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(paths.model) as tmp:
        model.booster_.save_model(str(tmp), num_iteration=model.best_iteration_)
    write_json(paths.train_info, {k: v for k, v in info.items() if k != "fit_seconds"})
    log.info("train_lgbm: %d features, best iteration %d, fit %.1f s", len(names), info["best_iteration"],
             info["fit_seconds"])
    return info


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
