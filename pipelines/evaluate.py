"""Stage evaluate: metrics per split (SRC, MAE, MSE) -> reports/metrics.json, plot tables, submission.json.

On the simulated default set the oracle (noise-free expected label) is scored beside the model.
"""

from __future__ import annotations

import json
import logging

import polars as pl

from featurestore.config import config_from_dict
from models.evaluation import MODEL_TABLES, EvaluateConfig, oracle_metrics, plot_tables, split_metrics
from models.train_stack import learner_metrics
from models.submission import SubmissionConfig, build_submission, check_submission
from pipelines.paths import Paths
from pipelines.stage import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("evaluate", "submission")


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(EvaluateConfig, "evaluate", params.get("evaluate"))
    sub_cfg = config_from_dict(SubmissionConfig, "submission", params.get("submission"))
    tables = {m: pl.read_parquet(paths.table(t)) for m, t in MODEL_TABLES.items() if paths.table(t).is_file()}
    if cfg.submit_model not in tables:
        raise FileNotFoundError(f"evaluate: no predictions of {cfg.submit_model!r} at {paths.table(MODEL_TABLES[cfg.submit_model])}")
    metrics: dict = {m: split_metrics(p) for m, p in tables.items()}
    if "stack" in tables:
        metrics["base_learners"] = {k: v for k, v in learner_metrics(tables["stack"]).items() if k != "stack"}
    preds = tables[cfg.submit_model]
    metrics["submitted_model"] = cfg.submit_model
    if paths.oracle.is_file():  # simulated data: score the oracle beside the model
        metrics["oracle"] = oracle_metrics(preds, pl.read_parquet(paths.oracle))
    write_json(paths.metrics, metrics)
    scatter, bins = plot_tables(preds, cfg)
    paths.plots.mkdir(parents=True, exist_ok=True)
    scatter.write_csv(paths.plots / "pred_vs_true.csv")
    bins.write_csv(paths.plots / "mae_by_bin.csv")
    todo = preds.filter(pl.col("split") == "predict")
    sub = build_submission(todo["pid"].to_numpy(), todo["pred"].to_numpy(), sub_cfg)
    check_submission(sub, set(todo["pid"].to_list()), sub_cfg)
    paths.submission.write_text(json.dumps(sub, indent=1) + "\n")  # key order as the challenge shows it
    m = metrics[cfg.submit_model]
    log.info("evaluate (%s): val SRC %.4f MAE %.4f | test SRC %.4f MAE %.4f | submission: %d posts", cfg.submit_model,
             m["val"]["src"], m["val"]["mae"], m["test"]["src"], m["test"]["mae"], len(sub["result"]))
    return metrics


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
