"""The AutoGluon peer benchmark hands AutoGluon exactly the stack's rows and columns, and never test labels."""

import numpy as np
import polars as pl
import pytest

pytest.importorskip("pandas", reason="AutoGluon's frames are pandas (the dev extra installs it)")

from benchmarks.bench_peer_autogluon import (
    LABEL,
    autogluon_frames,
    fit_autogluon,
    markdown,
    split_labels,
)
from models.matrix import to_matrix

N = 400
NAMES = ["a", "b", "c", "base_cat_category_code"]


def _frame(seed: int = 0) -> pl.DataFrame:
    """pid, split (train/val/test/predict, interleaved), label (null for predict), 3 numbers + 1 code."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 4)).astype(np.float32)
    X[:, 3] = rng.integers(0, 5, N)
    X[rng.random(N) < 0.05, 1] = np.nan
    split = rng.choice(["train", "val", "test", "predict"], size=N, p=[0.55, 0.15, 0.15, 0.15])
    y = 2 * X[:, 0] - X[:, 2] + (X[:, 3] == 2) + rng.normal(scale=0.3, size=N)
    label = pl.Series(LABEL, np.where(split == "predict", np.nan, y)).fill_nan(None)
    return pl.DataFrame({"pid": np.arange(N), "split": split, **{n: X[:, j] for j, n in enumerate(NAMES)}}) \
        .with_columns(label)


def _as_matrix(df) -> np.ndarray:
    return np.column_stack([df[n].astype("float64").to_numpy() for n in NAMES]).astype(np.float32)


def test_frames_keep_the_stacks_rows_and_columns():
    frame = _frame()
    frames = autogluon_frames(frame, NAMES)
    X, split = to_matrix(frame, NAMES), frame["split"].to_numpy()
    y = frame[LABEL].to_numpy()
    for key, part in (("train", "train"), ("tuning", "val"), ("val", "val"), ("test", "test")):
        df, rows = frames[key], split == part
        with_label = key in ("train", "tuning")
        assert list(df.columns) == NAMES + ([LABEL] if with_label else []), key
        assert len(df) == rows.sum(), key
        np.testing.assert_array_equal(_as_matrix(df), X[rows])  # same rows, same order, NaN kept
        if with_label:
            np.testing.assert_array_equal(df[LABEL].to_numpy(), y[rows])
    assert str(frames["train"]["base_cat_category_code"].dtype) == "category"
    assert str(frames["train"]["a"].dtype) == "float32"
    labels = split_labels(frame)
    assert len(labels["test"]) == (split == "test").sum() and len(labels["val"]) == (split == "val").sum()


def test_frames_never_carry_test_labels():
    frame = _frame()
    poisoned = frame.with_columns(pl.when(pl.col("split") == "test").then(1e9).otherwise(pl.col(LABEL)).alias(LABEL))
    a, b = autogluon_frames(frame, NAMES), autogluon_frames(poisoned, NAMES)
    for key in a:
        assert a[key].equals(b[key]), key  # no frame changes when every test label does
    assert LABEL not in a["test"].columns and LABEL not in a["val"].columns
    with pytest.raises(ValueError, match="label"):  # a feature named like the label column is refused
        autogluon_frames(frame, ["a", LABEL])


def test_autogluon_fits_on_the_frames(tmp_path):
    pytest.importorskip("autogluon.tabular", reason="autogluon is not installed here (the `peer` extra; it needs "
                                                    "a venv of its own, see benchmarks/bench_peer_autogluon.py)")
    frame = _frame(1)
    frames = autogluon_frames(frame, NAMES)
    fit = fit_autogluon(frames, "medium_quality", 60, tmp_path / "ag", num_cpus=1, verbosity=0,
                        hyperparameters={"GBM": {"num_boost_round": 50}})
    labels = split_labels(frame)
    for s in ("val", "test"):
        assert fit["pred"][s].shape == labels[s].shape and np.isfinite(fit["pred"][s]).all()
    assert fit["n_models"] >= 1 and fit["fit_seconds"] > 0 and 1 <= fit["n_features_used"] <= len(NAMES)
    assert np.corrcoef(fit["pred"]["test"], labels["test"])[0, 1] > 0.5  # it learned something from train rows


def test_markdown_has_one_row_per_model():
    row = {"model": "stack", "val_src": 0.5, "val_mae": 1.0, "test_src": 0.4, "test_mae": 1.1, "fit_s": 12.0,
           "time_limit_s": None, "note": ""}
    report = {"command": "python -m benchmarks.bench_peer_autogluon", "date": "d", "cpu": "c", "cores": 2,
              "loadavg_start": [1.0], "loadavg_end": [1.0], "root": "/r",
              "sizes": {"n_features": 4, "n_categorical": 1, "train": 1, "val": 1, "test": 1, "predict": 0},
              "stack_learners": "lgbm", "stack_meta": "nnls", "stack_ensemble_seconds": 10.0, "eval_metric": "rmse",
              "num_cpus": 2, "versions": {"python": "3"}, "rows": [row, {**row, "model": "AutoGluon x", "time_limit_s": 12.0}]}
    report["autogluon"] = [{"preset": "x", "time_limit": 12.0, "fit_seconds": 20.0, "predict_seconds": 0.5,
                            "leaderboard": [{"model": "LightGBM", "fit_time": 19.0, "score_val": -1.5}]}]
    text = markdown(report)
    assert "- x: LightGBM 19 s (-1.5000); predict 0.5 s; fit ran 8 s past time_limit" in text
    assert "| stack | 0.5000 | 1.0000 | 0.4000 | 1.1000 | 12 |" in text and "| AutoGluon x |" in text
