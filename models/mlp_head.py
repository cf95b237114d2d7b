"""Neural regression head over tabular features, with the GBDT wrappers' fit interface.

``MLPRegressorHead`` is a small multi-layer perceptron (scikit-learn's ``MLPRegressor``
trained one epoch at a time with Adam) behind the same interface as ``models.gbdt``:
``fit(X, y, X_val=None, y_val=None, num_boost_round=None)`` where ``num_boost_round`` is a
fixed number of epochs, ``predict(X)``, ``best_iteration_`` (epochs kept), ``n_features_in_``.

All preprocessing statistics come from the training X only: non-finite values are missing,
missing values are imputed with the column's train median and flagged by one 0/1 indicator
column per column that had a missing value in training; then every column is standardised
with the train mean and std and clipped to +-5. The target is standardised too and mapped back in ``predict``.
The network trains in float32 (the standardised matrix is float32 and scikit-learn keeps that
dtype): at 305k x 1,000 features this halves the head's memory. ``predict`` standardises
CHUNK_ROWS rows at a time and evaluates them in float64.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from featurestore.standardise import CHUNK_ROWS, apply_standardiser, fit_standardiser
from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input


class MLPRegressorHead(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """MLP (ReLU, Adam, L2 ``alpha``) on standardised features, early-stopped on an explicit val set.

    Each epoch is one pass over the shuffled training rows; after each epoch the val MSE is
    recorded in ``val_mse_`` and the weights of the best epoch so far are kept. Training stops
    ``patience`` epochs after the last improvement, or after ``max_epochs``.
    """

    def __init__(self, *, hidden_layer_sizes: tuple[int, ...] = (64, 32), alpha: float = 1e-4,
                 learning_rate_init: float = 1e-3, batch_size: int = 256, max_epochs: int = 100,
                 patience: int = 10, seed: int = 42):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            num_boost_round: int | None = None) -> "MLPRegressorHead":
        """Fit on (X, y); with (X_val, y_val) keep the epoch with the lowest val MSE.

        ``num_boost_round`` fixes the number of epochs (no early stopping).
        """
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False,
                                              dtype=(np.float32, np.float64))
        self.stats_ = fit_standardiser(X)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        Z = apply_standardiser(X, self.stats_, dtype=np.float32)
        t = ((y - self.y_mean_) / self.y_std_).astype(np.float32)
        early = X_val is not None and num_boost_round is None
        Z_val = apply_standardiser(X_val, self.stats_) if early else None  # float64, as in predict
        net = MLPRegressor(hidden_layer_sizes=self.hidden_layer_sizes, alpha=self.alpha, solver="adam",
                           learning_rate_init=self.learning_rate_init, batch_size=min(self.batch_size, len(Z)),
                           shuffle=True, random_state=self.seed)
        self.val_mse_, best, since_best, epochs = [], None, 0, 0
        for epochs in range(1, (num_boost_round or self.max_epochs) + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                net.partial_fit(Z, t)
            if not early:
                continue
            mse = float(np.mean((net.predict(Z_val) * self.y_std_ + self.y_mean_ - y_val) ** 2))
            self.val_mse_.append(mse)
            if best is None or mse < min(self.val_mse_[:-1]):
                best, since_best = copy.deepcopy(net), 0
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        self.net_ = best if early else net
        self.best_iteration_ = int(np.argmin(self.val_mse_) + 1) if early else epochs
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, d) -> (n,) predictions in label units."""
        X = check_predict_input(self, X, ensure_all_finite=False, dtype=(np.float32, np.float64))
        out = np.empty(len(X))
        for a in range(0, len(X), CHUNK_ROWS):  # float64 arithmetic (a row's output never depends on its batch)
            Z = apply_standardiser(X[a:a + CHUNK_ROWS], self.stats_, dtype=np.float64)
            out[a:a + CHUNK_ROWS] = self.net_.predict(Z).reshape(-1)
        return out * self.y_std_ + self.y_mean_
