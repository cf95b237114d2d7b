"""The one column standardiser: statistics learned from training rows, applied to any rows.

Non-finite values are missing. ``impute="median"`` fills them with the column's training
median and standardises the filled column (mean and std of the filled training values);
``impute="mean"`` standardises with the mean and std of the observed training values, so a
missing value becomes 0. ``missing_flags`` adds one 0/1 indicator column per column that had
a missing value in training (standardised like the others). Every output is clipped to
+-``clip``: a column nearly constant in training can take values hundreds of training SDs
away in later posts, and one such input drives a network's output out of range.

Statistics are computed a block of columns at a time and applied a block of rows at a time
in float64, so a large float32 matrix is never copied whole in float64.
"""

from __future__ import annotations

import warnings

import numpy as np

CHUNK_ROWS = 32768  # rows standardised at a time: float64 work space stays ~CHUNK_ROWS x d
CHUNK_COLS = 64     # columns whose statistics are computed at a time (float64 work space n x CHUNK_COLS)
CLIP_Z = 5.0


def fit_standardiser(X: np.ndarray, *, impute: str = "median", missing_flags: bool = True,
                     min_scale: float = 0.0) -> dict[str, np.ndarray]:
    """Statistics of (n, d) training X: {'fill' (d,), 'missing_cols' (k,), 'mean' (d+k,), 'std' (d+k,)}.

    A column whose spread is not above ``min_scale`` (or not finite) is only centred.
    """
    if impute not in ("median", "mean"):
        raise ValueError(f"impute must be 'median' or 'mean'; got {impute!r}")
    X = np.asarray(X)
    n, d = X.shape
    fill, means, stds = np.zeros(d), np.zeros(d), np.ones(d)
    missing_cols, flag_means, flag_stds = [np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0)]
    for a in range(0, d, CHUNK_COLS):
        cols = slice(a, a + CHUNK_COLS)
        block = np.asarray(X[:, cols], dtype=np.float64)
        missing = ~np.isfinite(block)
        observed = np.where(missing, np.nan, block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns
            if impute == "median":
                med = np.nan_to_num(np.nanmedian(observed, axis=0), nan=0.0) if n else np.zeros(block.shape[1])
                filled = np.where(missing, med, block)
                fill[cols], means[cols], stds[cols] = med, filled.mean(axis=0), filled.std(axis=0)
            else:
                mean = np.nan_to_num(np.nanmean(observed, axis=0), nan=0.0) if n else np.zeros(block.shape[1])
                fill[cols], means[cols] = mean, mean
                stds[cols] = np.nanstd(observed, axis=0) if n else np.ones(block.shape[1])
        if missing_flags:
            flagged = missing.any(axis=0)
            missing_cols.append(a + np.flatnonzero(flagged))
            flag_means.append(missing[:, flagged].mean(axis=0))
            flag_stds.append(missing[:, flagged].std(axis=0))
    std = np.concatenate([stds, *flag_stds])
    return {"fill": fill, "missing_cols": np.concatenate(missing_cols),
            "mean": np.concatenate([means, *flag_means]),
            "std": np.where(np.isfinite(std) & (std > min_scale), std, 1.0)}


def apply_standardiser(X: np.ndarray, stats: dict[str, np.ndarray], dtype=np.float64, clip: float = CLIP_Z
                       ) -> np.ndarray:
    """(n, d) raw values -> (n, d + k) imputed, flagged, standardised, clipped to +-clip, as ``dtype``."""
    X = np.asarray(X)
    n, d = X.shape
    cols = stats["missing_cols"]
    out = np.empty((n, d + len(cols)), dtype=dtype)
    for a in range(0, n, CHUNK_ROWS):
        block = np.asarray(X[a:a + CHUNK_ROWS], dtype=np.float64)
        missing = ~np.isfinite(block)
        z = np.hstack([np.where(missing, stats["fill"], block), missing[:, cols]])
        z -= stats["mean"]
        z /= stats["std"]
        np.clip(z, -clip, clip, out=out[a:a + CHUNK_ROWS])
    return out


class Standardiser:
    """Estimator form (``fit`` on training rows, ``transform`` any rows) of the functions above."""

    def __init__(self, clip: float = CLIP_Z, impute: str = "mean", missing_flags: bool = False,
                 min_scale: float = 1e-12):
        self.clip = clip
        self.impute = impute
        self.missing_flags = missing_flags
        self.min_scale = min_scale

    def fit(self, x: np.ndarray) -> "Standardiser":
        self.stats_ = fit_standardiser(x, impute=self.impute, missing_flags=self.missing_flags,
                                       min_scale=self.min_scale)
        return self

    def transform(self, x: np.ndarray, dtype=np.float64) -> np.ndarray:
        return apply_standardiser(x, self.stats_, dtype=dtype, clip=self.clip)
