"""Metrics per split, oracle comparison, plot tables: pure functions over the predictions table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from models.metrics import metrics_by_bin, regression_metrics

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class EvaluateConfig:
    label_bins: tuple[float, ...] = (1, 3, 5, 7, 9, 11, 13, 17)
    plot_rows: int = 3000  # sample of (true, pred) points per split in the scatter plot
    seed: int = 42
    submit_model: str = "stack"  # whose predictions go into the submission and the plots (stack or lgbm)

    def __post_init__(self) -> None:
        if self.submit_model not in MODEL_TABLES:
            raise ValueError(f"evaluate.submit_model must be one of {sorted(MODEL_TABLES)}, got {self.submit_model!r}")


# model name -> registered predictions table (columns pid, split, label, pred[, pred_<learner>])
MODEL_TABLES = {"lgbm": "predictions", "stack": "predictions_stack"}


def split_metrics(preds: pl.DataFrame, column: str = "pred", *, splits: tuple[str, ...] = SPLITS,
                  bias: bool = False) -> dict[str, dict]:
    """{split: {n, src, mae, mse[, bias]}} of ``column`` against ``label`` over the labelled rows of each split.

    The one metrics function of the project (evaluate, the stack's report, the error report).
    bias: also the mean of prediction - label (NaN when empty).
    """
    out = {}
    for s in splits:
        part = preds.filter((pl.col("split") == s) & pl.col("label").is_not_null() & pl.col(column).is_not_null())
        y, p = part["label"].to_numpy(), part[column].to_numpy()
        out[s] = regression_metrics(y, p)
        if bias:
            out[s]["bias"] = float(np.mean(p - y)) if len(y) else float("nan")
    return out


def model_metrics(preds: pl.DataFrame, *, splits: tuple[str, ...] = SPLITS, bias: bool = False
                  ) -> dict[str, dict[str, dict]]:
    """``split_metrics`` of the stack (``pred``) and of every base learner (``pred_<learner>``), by model name."""
    return {("stack" if c == "pred" else c.removeprefix("pred_")): split_metrics(preds, c, splits=splits, bias=bias)
            for c in preds.columns if c == "pred" or c.startswith("pred_")}


def headline_metrics(evaluation: dict, splits: tuple[str, ...] = ("val", "test")) -> dict:
    """The numbers people compare across experiments (DVC's metrics file), from the full evaluation:
    ``{model: {split: {src, mae, mse}}}`` for every model (``lgbm``, ``stack``, ``stack_<learner>``) and,
    on simulated data, ``oracle_ratio`` (SRC as a fraction of the oracle's) in the submitted model's entry."""
    pick = lambda m: {s: {k: m[s][k] for k in ("src", "mae", "mse")} for s in splits if s in m}  # noqa: E731
    out = {name: pick(evaluation[name]) for name in MODEL_TABLES if name in evaluation}
    out |= {f"stack_{name}": pick(m) for name, m in evaluation.get("base_learners", {}).items()}
    if "oracle" in evaluation and evaluation.get("submitted_model") in out:
        out[evaluation["submitted_model"]]["oracle_ratio"] = {s: evaluation["oracle"][s]["src_ratio"] for s in splits
                                                              if s in evaluation["oracle"]}
    return out


def oracle_metrics(preds: pl.DataFrame, oracle: pl.DataFrame) -> dict[str, dict]:
    """Simulated data only: the noise-free oracle's scores, ours on the hidden labels of the
    unlabelled posts, and our SRC as a fraction of the oracle's, per split."""
    j = preds.join(oracle.select("pid", "expected_label", pl.col("label").alias("true_label")), on="pid", how="inner")
    out = {}
    for s in SPLITS + ("predict",):
        part = j.filter(pl.col("split") == s)
        truth = part["true_label"].to_numpy()
        orc = regression_metrics(truth, part["expected_label"].to_numpy())
        ours = regression_metrics(truth, part["pred"].to_numpy())
        out[s] = {"oracle": orc, "model": ours,
                  "src_ratio": ours["src"] / orc["src"] if orc["n"] and orc["src"] else None}
    return out


def plot_tables(preds: pl.DataFrame, cfg: EvaluateConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(scatter sample of true vs predicted, MAE and bias per label bin) for val and test."""
    labelled = preds.filter(pl.col("split").is_in(["val", "test"]) & pl.col("label").is_not_null())
    rng = np.random.default_rng(cfg.seed)
    parts = []
    for s in ("val", "test"):
        part = labelled.filter(pl.col("split") == s)
        if part.height > cfg.plot_rows:
            part = part[np.sort(rng.choice(part.height, cfg.plot_rows, replace=False)).tolist()]
        parts.append(part)
    scatter = pl.concat(parts).select("pid", "split", "label", pl.col("pred").alias("predicted"))
    rows = []
    for s in ("val", "test"):
        part = labelled.filter(pl.col("split") == s)
        for r in metrics_by_bin(part["label"].to_numpy(), part["pred"].to_numpy(), list(cfg.label_bins)):
            rows.append({"split": s, **r})
    return scatter, pl.DataFrame(rows)
