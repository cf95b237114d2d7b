"""Stage train_stack: LightGBM, CatBoost, XGBoost and an MLP head stacked on time-respecting
out-of-fold predictions (meta-learner: non-negative linear by default) -> predictions for every post.
With ``train_stack.refit_full`` (submit mode) every learner is refitted on train + val and predicts
the test/predict posts (``models.train_stack``)."""

from __future__ import annotations

import logging

import joblib

from featurestore.atomic import atomic_write
from featurestore.config import config_from_dict
from models.train_stack import StackConfig, fit_stack
from pipelines.model_inputs import load_inputs
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("train_stack",)


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(StackConfig, "train_stack", params.get("train_stack"))
    frame, names, group_names, postdate = load_inputs(paths, cfg.all_groups)
    preds, bundle, info = fit_stack(frame, names, postdate, cfg, group_names)
    out = paths.table("predictions_stack")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        preds.write_parquet(tmp, compression="zstd")
    paths.stack_model.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(paths.stack_model) as tmp:
        joblib.dump(bundle, tmp)
    write_json(paths.reports / "train_stack.json", {k: v for k, v in info.items() if k not in ("fit_seconds", "timings")})
    log.info("train_stack: %s, weights %s, fit %.0f s", ", ".join(cfg.learners), info["weights"], info["fit_seconds"])
    log.info("train_stack: seconds per learner (folds / refit): %s", info["timings"])
    if info["refit_full"]:
        log.info("train_stack: refitted on all %d labelled posts (iterations: %s)", info["n_train"] + info["n_val"],
                 {k: v["rounds"] for k, v in info["refit_full"].items()})
    return info


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
