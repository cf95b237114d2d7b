"""The estimator contract every base learner shares: input checks and the NaN-means-missing tag.

``check_fit_inputs`` / ``check_predict_input`` wrap scikit-learn's ``validate_data`` (which sets
and checks ``n_features_in_``); ``AllowNaNMixin`` tells scikit-learn's estimator checks that NaN
in X is accepted as "missing".
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data


def check_fit_inputs(est: BaseEstimator, X, y, X_val=None, y_val=None, *, ensure_all_finite="allow-nan",
                     dtype=np.float32, ensure_min_samples: int = 1) -> tuple:
    """Validate training (and optional validation) data; sets ``n_features_in_``.

    Returns (X (n, d) ``dtype``, y (n,) float64, X_val (m, d) or None, y_val (m,) or None).
    ``ensure_all_finite`` is scikit-learn's: "allow-nan" (NaN = missing), False (NaN and inf
    accepted) or True; y must always be finite.
    """
    X, y = validate_data(est, X, y, dtype=dtype, ensure_all_finite=ensure_all_finite, y_numeric=True,
                         ensure_min_samples=ensure_min_samples)
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    if X_val is not None:
        X_val, y_val = validate_data(est, X_val, y_val, dtype=dtype, ensure_all_finite=ensure_all_finite,
                                     y_numeric=True, reset=False)
        y_val = np.asarray(y_val, dtype=np.float64)
    return X, np.asarray(y, dtype=np.float64), X_val, y_val


def check_predict_input(est: BaseEstimator, X, *, ensure_all_finite="allow-nan", dtype=np.float32) -> np.ndarray:
    """Check ``est`` is fitted and X is (n, n_features_in_); returns X as ``dtype``."""
    check_is_fitted(est)
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    if (isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype in dtypes and len(X)
            and X.shape[1] == getattr(est, "n_features_in_", None) and ensure_all_finite in ("allow-nan", True, False)):
        # the common case checked without scikit-learn's generic conversions (a served request's
        # one row spends more time there than in the model); same checks, same errors
        bad = (np.isinf(X).any() if ensure_all_finite == "allow-nan" else
               not np.isfinite(X).all() if ensure_all_finite else False)
        if not bad:
            return X
    return validate_data(est, X, dtype=dtype, ensure_all_finite=ensure_all_finite, reset=False)


class AllowNaNMixin:
    """Mixin: tells scikit-learn's checks that NaN in X means "missing" and is accepted."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
