"""Popularity metrics: Spearman rank correlation (SRC), MAE, MSE; per label bin."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Spearman's rho with average ranks for ties (same as scipy.stats.spearmanr); NaN if constant."""
    a = rankdata(np.asarray(y_true, dtype=np.float64))
    b = rankdata(np.asarray(y_pred, dtype=np.float64))
    a -= a.mean()
    b -= b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """{'src', 'mae', 'mse', 'n'} for one split; empty input gives n=0 and NaNs."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if len(y_true) == 0:
        return {"n": 0, "src": float("nan"), "mae": float("nan"), "mse": float("nan")}
    err = y_pred - y_true
    return {"n": int(len(y_true)), "src": spearman(y_true, y_pred),
            "mae": float(np.abs(err).mean()), "mse": float((err * err).mean())}


def metrics_by_bin(y_true: np.ndarray, y_pred: np.ndarray, edges: list[float]) -> list[dict]:
    """MAE and bias (mean of pred - true) per label bin [edges[i], edges[i+1])."""
    y_true = np.asarray(y_true, dtype=np.float64)
    err = np.asarray(y_pred, dtype=np.float64) - y_true
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (y_true >= lo) & (y_true < hi)
        rows.append({"bin": f"[{lo:g},{hi:g})", "lo": lo, "hi": hi, "n": int(m.sum()),
                     "mae": float(np.abs(err[m]).mean()) if m.any() else None,
                     "bias": float(err[m].mean()) if m.any() else None})
    return rows
