"""Contrastive fine-tuning on frozen embeddings: the ``ContrastiveRegressor`` estimator and the
``finetuned_embeddings`` feature-group builder.

``ContrastiveRegressor(loss="l1" | "rnc" | "wrcr")`` (scikit-learn style) trains
``models.contrastive.ContrastiveRegressionNet`` on X = modality blocks side by side (``blocks``:
their widths, e.g. (384, 29) for MiniLM text + image statistics). Every block is imputed and
standardised with statistics of the training rows (``featurestore.standardise.fit_standardiser``); the
target is standardised too. The loss is L1 on the regression output, plus (rnc / wrcr)
``contrastive_weight`` times the RNC / WRCR loss of the 64-d embedding against the raw labels
(label distances in label units). With ``(X_val, y_val)`` the epoch with the lowest val MAE is
kept and training stops ``patience`` epochs after it. ``transform(X)`` gives the fine-tuned
embedding (the penultimate layer), ``predict(X)`` the regression output.

The builder fits one head on the train split and writes ``pid, postdate, ft_0 .. ft_{E-1}`` for
every post. Early stopping reads either the latest ``es_fraction`` of the train period
("train_tail", the default: no val or test label reaches the table) or the val split ("val").
With ``crossfit_folds = K`` a train post's row comes from a head fitted without its fold (so it
does not depend on its own label), mapped into the main head's space by least squares fitted on
the other folds' train rows.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from featurestore.embeddings import align_rows, embedding_arrays
from models.contrastive import ContrastiveRegressionNet, HeadConfig, ranked_contrastive_loss
from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input
from featurestore.standardise import apply_standardiser, fit_standardiser
from models.metrics import regression_metrics

log = logging.getLogger(__name__)
LOSSES = ("l1", "rnc", "wrcr")


class ContrastiveRegressor(AllowNaNMixin, RegressorMixin, BaseEstimator):
    """Projection heads + fusion + regressor trained with L1 (+ RNC / WRCR) on frozen embeddings."""

    def __init__(self, *, loss: str = "wrcr", blocks: tuple[int, ...] | None = None, weighting: str = "linear",
                 alpha: float = 0.4, temperature: float = 2.0, similarity: str = "l2",
                 contrastive_weight: float = 1.0, proj_hidden: int = 1536, proj_dim: int = 128,
                 embed_dim: int = 64, dropout: float = 0.1, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 1e-4, max_epochs: int = 40, patience: int = 5, seed: int = 42,
                 threads: int | None = None, verbose: bool = False):
        self.loss = loss
        self.blocks = blocks
        self.weighting = weighting
        self.alpha = alpha
        self.temperature = temperature
        self.similarity = similarity
        self.contrastive_weight = contrastive_weight
        self.proj_hidden = proj_hidden
        self.proj_dim = proj_dim
        self.embed_dim = embed_dim
        self.dropout = dropout
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.threads = threads
        self.verbose = verbose

    # ------------------------------------------------------------ inputs
    def _widths(self, d: int) -> tuple[int, ...]:
        widths = tuple(self.blocks) if self.blocks else (d,)
        if sum(widths) != d or min(widths) < 1:
            raise ValueError(f"blocks {widths} must be positive widths summing to the {d} columns of X")
        return widths

    def _tensors(self, X: np.ndarray) -> list[torch.Tensor]:
        """(n, d) raw -> one standardised float32 tensor (n, d_m + flags) per modality block."""
        edges = np.cumsum((0, *self.blocks_))
        return [torch.from_numpy(apply_standardiser(X[:, a:b], st).astype(np.float32))
                for a, b, st in zip(edges[:-1], edges[1:], self.stats_)]

    # ------------------------------------------------------------ training
    def _objective(self, z: torch.Tensor, pred: torch.Tensor, y_std: torch.Tensor, y_raw: torch.Tensor):
        loss = torch.nn.functional.l1_loss(pred, y_std)
        if self.loss != "l1" and len(y_raw) >= 2:
            alpha = self.alpha if self.loss == "wrcr" else 0.0
            loss = loss + self.contrastive_weight * ranked_contrastive_loss(
                z, y_raw, temperature=self.temperature, similarity=self.similarity, alpha=alpha,
                weighting=self.weighting)
        return loss

    def _epoch(self, net, opt, blocks, y_std, y_raw, gen) -> float:
        net.train()
        order = torch.randperm(len(y_raw), generator=gen)
        total, n = 0.0, 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) < 2:
                continue  # a contrastive batch needs two samples
            z, pred = net([b[idx] for b in blocks])  # (B, E), (B,)
            loss = self._objective(z, pred, y_std[idx], y_raw[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        return total / max(n, 1)

    def fit(self, X, y, X_val=None, y_val=None) -> "ContrastiveRegressor":
        """Fit on (X, y); with (X_val, y_val) keep the epoch of lowest val MAE (early stopping)."""
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False,
                                              dtype=np.float64, ensure_min_samples=2)
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.blocks_ = self._widths(X.shape[1])
        edges = np.cumsum((0, *self.blocks_))
        self.stats_ = [fit_standardiser(X[:, a:b]) for a, b in zip(edges[:-1], edges[1:])]
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        blocks = self._tensors(X)
        cfg = HeadConfig(in_dims=tuple(b.shape[1] for b in blocks), proj_hidden=self.proj_hidden,
                         proj_dim=self.proj_dim, embed_dim=self.embed_dim, dropout=self.dropout)
        self.net_ = ContrastiveRegressionNet(cfg)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        y_raw = torch.as_tensor(y, dtype=torch.float32)
        y_std = (y_raw - self.y_mean_) / self.y_std_
        self.history_, best, best_state = [], np.inf, None
        for epoch in range(1, self.max_epochs + 1):
            row = {"epoch": epoch, "train_loss": self._epoch(self.net_, opt, blocks, y_std, y_raw, gen)}
            if X_val is not None:
                row["val_mae"] = float(np.abs(self.predict(X_val) - y_val).mean())
                if row["val_mae"] < best:
                    best, best_state, self.best_epoch_ = row["val_mae"], copy.deepcopy(self.net_.state_dict()), epoch
            self.history_.append(row)
            if self.verbose:
                log.info("%s epoch %d: %s", self.loss, epoch, row)
            if X_val is not None and epoch - self.best_epoch_ >= self.patience:
                break
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        else:
            self.best_epoch_ = len(self.history_)
        self.net_.eval()
        return self

    # ------------------------------------------------------------ inference
    def _forward(self, X: np.ndarray, batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "net_")
        X = check_predict_input(self, X, ensure_all_finite=False, dtype=np.float64)
        blocks = self._tensors(X)
        self.net_.eval()
        zs, ps = [], []
        with torch.inference_mode():
            for a in range(0, len(X), batch):
                z, p = self.net_([b[a:a + batch] for b in blocks])
                zs.append(z.numpy())
                ps.append(p.numpy())
        return np.concatenate(zs), np.concatenate(ps).astype(np.float64) * self.y_std_ + self.y_mean_

    def transform(self, X) -> np.ndarray:
        """(n, d) -> (n, embed_dim) float32: the fine-tuned embedding."""
        return self._forward(X)[0]

    def predict(self, X) -> np.ndarray:
        """(n, d) -> (n,) float64 predicted labels."""
        return self._forward(X)[1]


# ---------------------------------------------------------------- the feature-group builder

@dataclass(frozen=True)
class FinetuneConfig:
    loss: str = "wrcr"                 # l1 | rnc | wrcr
    weighting: str = "linear"          # wrcr: log | linear | quadratic
    alpha: float = 0.4
    temperature: float = 2.0
    similarity: str = "l2"
    contrastive_weight: float = 1.0    # L1 + weight * contrastive
    encoders: tuple[str, ...] = ("minilm", "image_stats")  # one modality each: embed_<name> table or tabular encoder
    tabular: tuple[str, ...] = ()      # feature tables whose numeric columns form one more modality
    proj_hidden: int = 1536
    proj_dim: int = 128
    embed_dim: int = 64
    dropout: float = 0.1
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_epochs: int = 30
    patience: int = 4
    early_stopping: str = "train_tail"  # train_tail: latest es_fraction of train; val: the val split
    es_fraction: float = 0.1
    crossfit_folds: int = 0            # K >= 2: train rows from heads fitted without their fold
    include_prediction: bool = False   # add the head's prediction as column ft_pred
    seed: int = 42
    threads: int = 1                   # torch CPU threads; 1 is fastest on a shared 2-core box

    def __post_init__(self) -> None:
        if self.loss not in LOSSES or self.early_stopping not in ("train_tail", "val"):
            raise ValueError(f"finetune: loss must be one of {LOSSES}, early_stopping train_tail or val")
        if not 0 < self.es_fraction < 1 or self.crossfit_folds == 1 or self.crossfit_folds < 0:
            raise ValueError("finetune: 0 < es_fraction < 1 and crossfit_folds 0 or >= 2")
        if not self.encoders and not self.tabular:
            raise ValueError("finetune: at least one encoder or tabular table")

    def estimator(self, blocks: tuple[int, ...]) -> ContrastiveRegressor:
        keep = set(ContrastiveRegressor().get_params())
        return ContrastiveRegressor(blocks=blocks, **{k: v for k, v in asdict(self).items() if k in keep})


def embedding_table_name(encoder: str) -> str:
    """The table an ``embed_<encoder>`` stage writes: ``embed_`` + the name with '-' -> '_'."""
    return "embed_" + encoder.replace("-", "_")


def _modality(paths, name: str, pid: np.ndarray) -> np.ndarray:
    from models.encoders import create_encoder, encoder_config

    if encoder_config(name).modality == "tabular":
        table = create_encoder(name).read_inputs(paths)
        x = np.asarray(table["x"].combine_chunks().flatten().to_numpy()).reshape(table.num_rows, -1)
        return align_rows(pid, table["pid"].to_numpy(), x)
    src_pid, _, emb = embedding_arrays(pq.read_table(paths.table(embedding_table_name(name))))
    return align_rows(pid, src_pid, emb)


def finetune_inputs(paths, cfg: FinetuneConfig) -> tuple[pl.DataFrame, np.ndarray, tuple[int, ...]]:
    """(frame: pid, postdate, split, label, sorted by pid), X (N, sum of widths), block widths."""
    frame = pl.read_parquet(paths.table("split"), columns=["pid", "postdate", "split"]).sort("pid")
    labels = pl.read_parquet(paths.table("labels"), columns=["pid", "label"])
    frame = frame.join(labels, on="pid", how="left").sort("pid")
    pid = frame["pid"].to_numpy()
    blocks = [_modality(paths, name, pid) for name in cfg.encoders]
    for name in cfg.tabular:
        tab = pl.read_parquet(paths.table(name))
        cols = [c for c in tab.columns if c not in ("pid", "postdate") and tab[c].dtype.is_numeric()]
        blocks.append(align_rows(pid, tab["pid"].to_numpy(), tab.select(pl.col(cols).cast(pl.Float64)).to_numpy()))
    return frame, np.hstack(blocks), tuple(b.shape[1] for b in blocks)


def _fit_rows(frame: pl.DataFrame, rows: np.ndarray, cfg: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """(fit mask, early-stopping mask) for training on ``rows`` (a mask of labelled train posts)."""
    if cfg.early_stopping == "val":
        return rows, (frame["split"] == "val").to_numpy() & frame["label"].is_not_null().to_numpy()
    date = frame["postdate"].to_numpy()
    cut = np.quantile(date[rows], 1.0 - cfg.es_fraction)
    return rows & (date < cut), rows & (date >= cut)


def _fit_head(X, y, frame, rows, cfg, blocks) -> ContrastiveRegressor:
    fit, es = _fit_rows(frame, rows, cfg)
    return cfg.estimator(blocks).fit(X[fit], y[fit], X[es], y[es])


def _affine(z: np.ndarray) -> np.ndarray:
    """(n, E) -> (n, E + 1): a column of ones appended (an intercept for least squares)."""
    return np.hstack([z, np.ones((len(z), 1))])


def _crossfit(X, y, frame, train, cfg, blocks, emb, pred) -> None:
    """Replace the train rows of ``emb`` / ``pred`` by out-of-fold values, aligned into emb's space."""
    idx = np.flatnonzero(train)
    fold = np.empty(len(X), np.int64)
    fold[idx] = np.random.default_rng(cfg.seed).permutation(len(idx)) % cfg.crossfit_folds
    for k in range(cfg.crossfit_folds):
        held, rest = train & (fold == k), train & (fold != k)
        head = _fit_head(X, y, frame, rest, cfg, blocks)
        W = np.linalg.lstsq(_affine(head.transform(X[rest])), emb[rest], rcond=None)[0]  # (E + 1, E): fold -> main
        emb[held] = _affine(head.transform(X[held])) @ W
        pred[held] = head.predict(X[held])


def fit_finetuned(paths, cfg: FinetuneConfig) -> tuple[pa.Table, ContrastiveRegressor, dict]:
    """Fit the head on the train split; returns (feature table, fitted head, info for a report)."""
    t0 = time.perf_counter()
    frame, X, blocks = finetune_inputs(paths, cfg)
    y = frame["label"].fill_null(np.nan).to_numpy().astype(np.float64)
    train = (frame["split"] == "train").to_numpy() & np.isfinite(y)
    head = _fit_head(X, y, frame, train, cfg, blocks)
    emb, pred = head._forward(X)
    emb = emb.astype(np.float64)
    if cfg.crossfit_folds:
        _crossfit(X, y, frame, train, cfg, blocks, emb, pred)
    cols = {f"ft_{i}": pa.array(emb[:, i], pa.float32()) for i in range(emb.shape[1])}
    if cfg.include_prediction:
        cols["ft_pred"] = pa.array(pred, pa.float64())
    table = pa.table({"pid": pa.array(frame["pid"].to_numpy()), "postdate": pa.array(frame["postdate"].to_numpy()),
                      **cols})
    split = frame["split"].to_numpy()
    scored = {s: (split == s) & np.isfinite(y) for s in ("train", "val", "test")}
    info = {"blocks": list(blocks), "best_epoch": head.best_epoch_, "epochs": len(head.history_),
            "seconds": round(time.perf_counter() - t0, 1), "n_train": int(train.sum()),
            "head_metrics": {s: regression_metrics(y[m], pred[m]) for s, m in scored.items()}}
    return table, head, info


def finetuned_embeddings(paths, cfg: FinetuneConfig) -> pa.Table:
    """Feature-group builder: pid, postdate, ft_0 .. ft_{E-1} (float32) for every post, sorted by pid."""
    return fit_finetuned(paths, cfg)[0]
