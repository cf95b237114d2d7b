"""Prediction intervals: LightGBM quantile models, conformalised on the validation split (CQR).

Quantile models alone under-cover on later posts (the default set: 69% of test labels inside a
nominal 80% interval), because their pinball loss is minimised on the training period and the
posts to predict come later. Conformalised quantile regression (Romano, Patterson & Candès
2019) widens (or narrows) the interval by one margin learned on a calibration set the models
never fitted:

    score_i = max(lo(x_i) - y_i, y_i - hi(x_i))            over the val posts
    margin  = the ceil((n + 1) * coverage) / n empirical quantile of the scores
    interval = [lo(x) - margin, hi(x) + margin]

The quantile models are fitted on the train split and early-stopped on its latest share
(``es_fraction``), so the val labels are used once, for the margin: validation picks, test
only reports. Coverage is then ~``coverage`` for posts exchangeable with val; later posts
drift, and ``interval_coverage`` in reports/train_stack.json shows by how much.

In submit mode (``train_stack.refit_full``) both quantile models are refitted on train + val
(``models.train_stack.refit_on_all_labels``) and keep the margin learned here: the refits saw
the val labels, so a margin calibrated on them again would be in-sample (too narrow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def conformal_margin(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, coverage: float) -> float:
    """CQR margin from calibration predictions lo, hi (n,) and labels y (n,) for the given coverage."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    scores = np.sort(np.maximum(lo - y, y - hi))  # (n,) > 0 where y falls outside [lo, hi]
    n = len(scores)
    if n == 0:
        raise ValueError("conformal calibration needs at least one labelled post")
    rank = math.ceil((n + 1) * coverage)
    return float(scores[min(rank, n) - 1]) if rank <= n else float("inf")


@dataclass
class ConformalInterval:
    """A lower and an upper quantile model plus the margin learned by ``calibrate``."""

    lower: object
    upper: object
    coverage: float
    margin_: float = 0.0
    n_calibration_: int = 0
    raw_coverage_: dict = field(default_factory=dict)

    def raw(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) -> the quantile models' own (lo, hi), each (N,); crossing pairs are sorted."""
        return _sorted(self.lower.predict(X), self.upper.predict(X))

    def calibrate(self, X: np.ndarray, y: np.ndarray) -> "ConformalInterval":
        """Learn the margin on calibration posts (the val split) that neither model fitted."""
        lo, hi = self.raw(X)
        self.margin_ = conformal_margin(lo, hi, np.asarray(y, np.float64), self.coverage)
        self.n_calibration_ = len(y)
        self.raw_coverage_ = {"calibration_inside_raw": float(((y >= lo) & (y <= hi)).mean())}
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) -> conformalised (lo, hi), each (N,)."""
        return self.conformalised(self.lower.predict(X), self.upper.predict(X))

    def conformalised(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval (lo, hi) from the ``lower`` and ``upper`` models' predictions (``predict``'s last step)."""
        lo, hi = _sorted(lower, upper)
        return lo - self.margin_, hi + self.margin_


def _sorted(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(lower, upper), np.maximum(lower, upper)
