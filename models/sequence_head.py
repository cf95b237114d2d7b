"""DSN-style neural sequence head: attention from a post to its related earlier posts.

DSN ("deep sequence network" for social-media popularity) treats the posts most related to
a target post and published before it as a short sequence ordered by relevance. A recurrent
encoder reads that sequence, and attention with the target post as the query pools it into a
context vector; target and context together give the prediction. The gated residual network
(GRN) blocks are those of Temporal Fusion Transformers.

What it gets here: one float matrix X (NaN allowed). ``sequence_columns`` (l, F) names the
column of field f of neighbour i (``seq_nb<i>_<field>`` of ``features_sequence``: the most
similar strictly earlier posts, most similar first); every other column is a tabular feature
of the target post. With ``sequence_columns=()`` the head is a tabular GRN regressor.

Preprocessing, all statistics from the training X only:
- tabular columns: ``featurestore.standardise.fit_standardiser`` (median imputation, missing flags, mean/std);
- neighbour fields: standardised per field with the mean/std of its finite training values,
  pooled over the l positions; a neighbour is present when its ``presence_field`` (``sim``) is
  finite; NaN and every field of an absent neighbour become 0, and the 0/1 present flag is
  appended as one more input channel; absent neighbours are masked out of the attention;
- the target is standardised with the train mean/std and mapped back in ``predict``.

Interface as ``models.gbdt`` / ``models.mlp_head``: ``fit(X, y, X_val=None, y_val=None,
num_boost_round=None)`` (early stopping on the explicit val set, or a fixed epoch count),
``predict(X)`` -> (n,), ``best_iteration_`` (epochs kept), ``n_features_in_``, ``val_mse_``.
"""

from __future__ import annotations

import contextlib
import copy
import re

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input
from featurestore.standardise import apply_standardiser, fit_standardiser

SEQ_COLUMN = re.compile(r"^seq_nb(\d+)_(\w+)$")
KNOWN_FIELDS = ("label", "has_label", "sim", "gap_days", "same_user")  # field order of from_feature_names
PREDICT_BATCH = 4096
DTYPE = torch.float64  # float64: predictions do not depend on the batch a row is predicted in


class GLU(nn.Module):
    """Gated linear unit: Linear(d_in, 2 d_out) then value * sigmoid(gate)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.fc = nn.Linear(d_in, 2 * d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d_in) -> (..., d_out)
        return F.glu(self.fc(x), dim=-1)


class GRN(nn.Module):
    """Gated residual network (TFT): LayerNorm(skip(x) + GLU(dropout(W1 ELU(W2 x))))."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float):
        super().__init__()
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else nn.Identity()
        self.fc_in = nn.Linear(d_in, d_hidden)
        self.fc_hidden = nn.Linear(d_hidden, d_hidden)
        self.drop = nn.Dropout(dropout)
        self.gate = GLU(d_hidden, d_out)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d_in) -> (..., d_out)
        h = self.fc_hidden(F.elu(self.fc_in(x)))
        return self.norm(self.skip(x) + self.gate(self.drop(h)))


class NeighbourEncoder(nn.Module):
    """Per-neighbour field projection, then an LSTM over the sequence with a gated residual."""

    def __init__(self, n_inputs: int, d_model: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(n_inputs, d_model)
        self.lstm = nn.LSTM(d_model, d_model, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.gate = GLU(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, F + 1) -> (B, L, D)
        e = self.proj(x)                                   # (B, L, D)
        h, _ = self.lstm(e)                                # (B, L, D), most similar neighbour first
        return self.norm(e + self.gate(self.drop(h)))


class SequenceNet(nn.Module):
    """Target GRN embedding + attention over encoded neighbours -> GRN -> scalar."""

    def __init__(self, n_tabular: int, n_fields: int, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.target = GRN(n_tabular, d_model, d_model, dropout)
        self.neighbours = NeighbourEncoder(n_fields + 1, d_model, dropout) if n_fields else None
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.head = GRN(2 * d_model, d_model, d_model, dropout)
        self.out = nn.Linear(d_model, 1)

    def forward(self, tab: torch.Tensor, nb: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """tab (B, T), nb (B, L, F + 1), present (B, L) bool -> (B,) standardised prediction."""
        q = self.target(tab)                               # (B, D)
        ctx = torch.zeros_like(q)                          # (B, D): no neighbours, zero context
        if self.neighbours is not None and nb.shape[1]:
            kv = self.neighbours(nb)                       # (B, L, D)
            any_present = present.any(dim=1)               # (B,)
            # a row with every key masked would softmax to NaN: unmask it, then zero its context
            mask = ~present & any_present[:, None]         # (B, L) True = ignore
            att, _ = self.attn(q[:, None, :], kv, kv, key_padding_mask=mask, need_weights=False)
            ctx = torch.where(any_present[:, None], att[:, 0], ctx)
        return self.out(self.head(torch.cat([q, ctx], dim=-1)))[:, 0]


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (None: unchanged); restore afterwards."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def parse_sequence_layout(names: list[str]) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """Column names -> ((l, F) column indices of ``seq_nb<i>_<field>``, F field names).

    Fields are ordered as ``KNOWN_FIELDS``, then any others alphabetically. Raises ValueError
    naming the first missing column when the (neighbour, field) grid is incomplete.
    """
    found = {(int(m[1]), m[2]): j for j, name in enumerate(names) if (m := SEQ_COLUMN.match(name))}
    if not found:
        return (), ()
    present = {f for _, f in found}
    fields = tuple(f for f in KNOWN_FIELDS if f in present) + tuple(sorted(present - set(KNOWN_FIELDS)))
    n_neighbours = 1 + max(i for i, _ in found)
    for i in range(n_neighbours):
        for f in fields:
            if (i, f) not in found:
                raise ValueError(f"sequence columns incomplete: missing column seq_nb{i}_{f}")
    return tuple(tuple(found[i, f] for f in fields) for i in range(n_neighbours)), fields


class SequenceHeadRegressor(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """DSN-style head: GRN target embedding, LSTM + attention over earlier related posts.

    Trained with AdamW on the standardised target (MSE), one shuffled pass per epoch. With an
    explicit val set the val MSE of each epoch is recorded in ``val_mse_``, the weights of the
    best epoch are kept and training stops ``patience`` epochs after the last improvement.
    """

    def __init__(self, *, sequence_columns: tuple[tuple[int, ...], ...] = (), field_names: tuple[str, ...] = (),
                 presence_field: str = "sim", d_model: int = 32, n_heads: int = 4, dropout: float = 0.1,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-5, batch_size: int = 256,
                 max_epochs: int = 60, patience: int = 8, seed: int = 42, num_threads: int | None = None):
        self.sequence_columns = sequence_columns
        self.field_names = field_names
        self.presence_field = presence_field
        self.d_model = d_model
        self.n_heads = n_heads
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.num_threads = num_threads

    @classmethod
    def from_feature_names(cls, names: list[str], **params) -> "SequenceHeadRegressor":
        """Unfitted estimator whose layout is parsed from the column names of X (see ``parse_sequence_layout``)."""
        columns, fields = parse_sequence_layout(list(names))
        return cls(sequence_columns=columns, field_names=fields, **params)

    def _layout(self, n_features: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Validated (l, F) sequence column indices, tabular column indices, presence field index."""
        if len(self.sequence_columns) == 0:
            return np.zeros((0, 0), dtype=np.int64), np.arange(n_features), -1
        cols = np.asarray(self.sequence_columns, dtype=np.int64)
        if cols.ndim != 2 or cols.size == 0:
            raise ValueError("sequence_columns must be an (l, F) grid of column indices")
        if len(self.field_names) != cols.shape[1] or self.presence_field not in self.field_names:
            raise ValueError(f"field_names {self.field_names!r} must name the {cols.shape[1]} fields "
                             f"and include presence_field {self.presence_field!r}")
        if cols.min() < 0 or cols.max() >= n_features or len(np.unique(cols)) != cols.size:
            raise ValueError(f"sequence_columns must be distinct column indices in [0, {n_features})")
        return cols, np.setdiff1d(np.arange(n_features), cols.ravel()), self.field_names.index(self.presence_field)

    def _tabular(self, X: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, T) tabular part; one constant column when X has none (the GRN needs an input)."""
        tab = X[:, self.tabular_columns_]
        return tab if tab.shape[1] else np.zeros((len(X), 1))

    def _fit_neighbour_stats(self, X: np.ndarray) -> None:
        """Per-field mean/std of the finite training values, pooled over neighbour positions."""
        raw = X[:, self.sequence_columns_]                 # (n, l, F)
        finite = np.isfinite(raw)
        count = np.maximum(finite.sum(axis=(0, 1)), 1)
        mean = np.where(finite, raw, 0.0).sum(axis=(0, 1)) / count
        var = np.where(finite, (raw - mean) ** 2, 0.0).sum(axis=(0, 1)) / count
        self.nb_mean_, self.nb_std_ = mean, np.where(var > 0, np.sqrt(var), 1.0)

    def _tensors(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(n, d) raw X -> tab (n, T), nb (n, l, F + 1), present (n, l) bool."""
        tab = apply_standardiser(self._tabular(X), self.tab_stats_)
        cols = self.sequence_columns_
        raw = X[:, cols]                                   # (n, l, F); (n, 0, 0) without a layout
        present = np.isfinite(raw[:, :, self.presence_index_]) if cols.size else np.zeros(raw.shape[:2], bool)
        z = (raw - self.nb_mean_) / self.nb_std_ if cols.size else raw
        z = np.where(np.isfinite(z) & present[:, :, None], z, 0.0)    # absent neighbour: all fields 0
        nb = np.concatenate([z, present[:, :, None].astype(np.float64)], axis=2)
        return (torch.tensor(tab, dtype=DTYPE), torch.tensor(nb, dtype=DTYPE),
                torch.tensor(present, dtype=torch.bool))

    def _predict_standardised(self, tensors: tuple[torch.Tensor, ...]) -> np.ndarray:
        """Eval-mode forward pass in fixed-size batches -> (n,) standardised predictions."""
        self.module_.eval()
        n = len(tensors[0])
        with torch.no_grad():
            parts = [self.module_(*(t[s:s + PREDICT_BATCH] for t in tensors)) for s in range(0, n, PREDICT_BATCH)]
        return torch.cat(parts).numpy() if parts else np.zeros(0)

    def _epoch(self, opt: torch.optim.Optimizer, tensors: tuple[torch.Tensor, ...], target: torch.Tensor,
               gen: torch.Generator) -> None:
        """One shuffled pass over the training rows."""
        self.module_.train()
        order = torch.randperm(len(target), generator=gen)
        size = min(self.batch_size, len(target))
        for s in range(0, len(target), size):
            idx = order[s:s + size]
            loss = F.mse_loss(self.module_(*(t[idx] for t in tensors)), target[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.module_.parameters(), 1.0)
            opt.step()

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            num_boost_round: int | None = None) -> "SequenceHeadRegressor":
        """Fit on (X, y); with (X_val, y_val) keep the epoch with the lowest val MSE.

        ``num_boost_round`` fixes the number of epochs (no early stopping).
        """
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False, dtype=np.float64)
        self.sequence_columns_, self.tabular_columns_, self.presence_index_ = self._layout(X.shape[1])
        self.tab_stats_ = fit_standardiser(self._tabular(X))
        self._fit_neighbour_stats(X)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        tensors, target = self._tensors(X), torch.tensor((y - self.y_mean_) / self.y_std_, dtype=DTYPE)
        early = X_val is not None and num_boost_round is None
        val_tensors = self._tensors(X_val) if early else None
        with torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)                   # weights and dropout; global RNG restored on exit
            gen = torch.Generator().manual_seed(self.seed)  # shuffling
            self.module_ = SequenceNet(tensors[0].shape[1], self.sequence_columns_.shape[1], self.d_model,
                                       self.n_heads, self.dropout).to(DTYPE)
            opt = torch.optim.AdamW(self.module_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            self.val_mse_, best, since_best, epochs = [], None, 0, 0
            for epochs in range(1, (num_boost_round or self.max_epochs) + 1):
                self._epoch(opt, tensors, target, gen)
                if not early:
                    continue
                pred = self._predict_standardised(val_tensors) * self.y_std_ + self.y_mean_
                self.val_mse_.append(float(np.mean((pred - y_val) ** 2)))
                if best is None or self.val_mse_[-1] < min(self.val_mse_[:-1]):
                    best, since_best = copy.deepcopy(self.module_.state_dict()), 0
                else:
                    since_best += 1
                    if since_best >= self.patience:
                        break
        if early:
            self.module_.load_state_dict(best)
        self.module_.eval()
        self.best_iteration_ = int(np.argmin(self.val_mse_) + 1) if early else epochs
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, d) -> (n,) predictions in label units."""
        X = check_predict_input(self, X, ensure_all_finite=False, dtype=np.float64)
        with torch_threads(self.num_threads):
            return self._predict_standardised(self._tensors(X)) * self.y_std_ + self.y_mean_
