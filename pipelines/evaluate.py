"""Stage evaluate: metrics per split (SRC, MAE, MSE) -> reports/evaluation.json (all of them) and
reports/metrics/<model>.json (the headline numbers DVC compares), plot tables, submission.json and
submission_report.json (every test-file post: scored by the model, by the fallback, or not submittable).

On the simulated default set the oracle (noise-free expected label) is scored beside the model.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import polars as pl

from featurestore.atomic import atomic_write, write_text_atomic
from featurestore.config import config_from_dict
from models.evaluation import MODEL_TABLES, EvaluateConfig, headline_metrics, model_metrics, oracle_metrics, plot_tables, split_metrics
from models.submission import (FALLBACK_RULE, SubmissionConfig, account_test_rows, build_submission, check_submission,
                               rejected_test_posts)
from featurestore.paths import Paths
from pipelines.stage_cli import stage_main, write_json

log = logging.getLogger(__name__)
PARAMS = ("evaluate", "submission")
SUBMISSION_REPORT = "submission_report.json"  # under reports/: how every test-file post was scored


def run(paths: Paths, params: dict) -> dict:
    cfg = config_from_dict(EvaluateConfig, "evaluate", params.get("evaluate"))
    sub_cfg = config_from_dict(SubmissionConfig, "submission", params.get("submission"))
    tables = {m: pl.read_parquet(paths.table(t)) for m, t in MODEL_TABLES.items() if paths.table(t).is_file()}
    if cfg.submit_model not in tables:
        raise FileNotFoundError(f"evaluate: no predictions of {cfg.submit_model!r} at {paths.table(MODEL_TABLES[cfg.submit_model])}")
    metrics: dict = {m: split_metrics(p) for m, p in tables.items()}
    if "stack" in tables:
        metrics["base_learners"] = {k: v for k, v in model_metrics(tables["stack"]).items() if k != "stack"}
    preds = tables[cfg.submit_model]
    metrics["submitted_model"] = cfg.submit_model
    if paths.oracle.is_file():  # simulated data: score the oracle beside the model
        metrics["oracle"] = oracle_metrics(preds, pl.read_parquet(paths.oracle))
    write_json(paths.evaluation, metrics)          # everything: n, train split, oracle breakdown
    write_headline(paths.metrics, headline_metrics(metrics))  # DVC's metrics: what experiments compare
    scatter, bins = plot_tables(preds, cfg)
    paths.plots.mkdir(parents=True, exist_ok=True)
    with atomic_write(paths.plots / "pred_vs_true.csv") as tmp:
        scatter.write_csv(tmp)
    with atomic_write(paths.plots / "mae_by_bin.csv") as tmp:
        bins.write_csv(tmp)
    sub, sub_report = submission(paths, preds, sub_cfg)
    write_json(paths.reports / SUBMISSION_REPORT, sub_report)
    write_text_atomic(paths.submission, json.dumps(sub, indent=1) + "\n")  # key order as the challenge shows it
    m = metrics[cfg.submit_model]
    log.info("evaluate (%s): val SRC %.4f MAE %.4f | test SRC %.4f MAE %.4f | submission: %d posts", cfg.submit_model,
             m["val"]["src"], m["val"]["mae"], m["test"]["src"], m["test"]["mae"], len(sub["result"]))
    return metrics


def write_headline(folder, headline: dict) -> None:
    """One ``<model>.json`` per model under ``folder`` (files of models no longer present are removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        if old.stem not in headline:
            old.unlink()
    for model, numbers in headline.items():
        write_json(folder / f"{model}.json", numbers)


def submission(paths: Paths, preds: pl.DataFrame, cfg: SubmissionConfig) -> tuple[dict, dict]:
    """The submission (one entry per test-file Pid) and its report.

    The model scores the kept test posts (split ``predict``); a test post rejected at ingest gets
    the fallback score (``models.submission.FALLBACK_RULE``). The expected Pids come from the
    ingest side (kept test posts in the posts table + the report's rejected rows), not from the
    predictions, and every row of the test files must be accounted for.
    """
    ingest = json.loads(paths.ingest_report.read_text())
    todo = preds.filter(pl.col("split") == "predict")
    test = ingest["splits"].get("test")
    if test is None:
        note = f"no test files in {ingest['smpd_dir']}: the submission has no posts"
        log.warning("evaluate: %s", note)
        sub = build_submission(todo["pid"].to_numpy(), todo["pred"].to_numpy(), cfg)
        check_submission(sub, set(), cfg)
        return sub, {"test_files": False, "note": note, "submitted": 0}
    if "rejected_rows" not in test:
        raise ValueError(f"{paths.ingest_report} has no rejected_rows (written by an older ingest): re-run ingest")
    posts = pl.read_parquet(paths.table("posts"), columns=["pid", "uid", "split"])
    kept = set(posts.filter(pl.col("split") == "test")["pid"].to_list())
    train = preds.filter(pl.col("split") == "train").join(posts.select("pid", "uid"), on="pid", how="left")
    fates = rejected_test_posts(test["rejected_rows"], kept, train["uid"].to_list(), train["label"].to_numpy())
    account_test_rows(test["rows_read"], len(kept), fates)
    fb = fates["fallback"]
    sub = build_submission(np.concatenate([todo["pid"].to_numpy(), np.array([r["pid"] for r in fb], dtype=np.int64)]),
                           np.concatenate([todo["pred"].to_numpy(), np.array([r["score"] for r in fb], dtype=np.float64)]),
                           cfg)
    check_submission(sub, kept | {r["pid"] for r in fb}, cfg)
    report = {"test_files": True, "test_rows_read": test["rows_read"], "submitted": len(sub["result"]),
              "scored_by_model": todo.height, "scored_by_fallback": len(fb), "duplicate_rows": len(fates["duplicate"]),
              "not_submittable": len(fates["unsubmittable"]), "fallback_rule": FALLBACK_RULE,
              "train_label_median": float(np.median(train["label"].to_numpy())), "posts": fates}
    if fb or fates["unsubmittable"]:
        log.warning("evaluate: %d rejected test post(s) scored by the fallback, %d test row(s) without a parsable "
                    "Pid not submittable; see %s", len(fb), len(fates["unsubmittable"]), paths.reports / SUBMISSION_REPORT)
    return sub, report


def main(argv: list[str] | None = None) -> None:
    stage_main(__doc__, run, argv)


if __name__ == "__main__":
    main()
