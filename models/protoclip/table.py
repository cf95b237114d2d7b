"""``protoclip_features``: the prototype-CLIP penultimate features of every post, as a feature table.

Inputs (paths relative to the work root, ``ProtoClipInputs``): the split (pid, postdate, split),
the labels (pid, label), the baseline features (``base_cat_subcategory_code``: the proxy class),
the image statistics (``img_*``: the "visual" embedding while no CLIP weights exist) and the
MiniLM text embeddings (pid, postdate, embedding Array(Float32, 384)). X = img_* columns,
``emb_minilm_0..383``, the class code; one ``ProtoClipRegressor`` is fitted on the labelled
train posts (standardisers, prototypes and weights see train rows only) and early-stopped on
the val split (``early_stopping="val"``, the default) or on the latest ``es_fraction`` of the
train period (``"train_tail"``: no val label reaches the table). The table is
``pid, postdate, pclip_0 .. pclip_{P-1}`` (float32) for every post of the split, sorted by pid.

With ``crossfit_folds = K >= 2`` a train post's row comes from a head fitted without its fold
(so it does not depend on its own label), mapped into the main head's space by least squares
fitted on the other folds' train rows. Without it LightGBM over-trusts the train rows' features
(on the simulated set: test SRC -0.015 without, -0.001 with 4 folds; see
benchmarks/results/protoclip_ablation.md), so use ``crossfit_folds=4`` for GBDT inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from featurestore.embeddings import align_rows, read_embeddings
from models.metrics import regression_metrics
from models.protoclip.estimator import ProtoClipRegressor

CLASS_COLUMN = "base_cat_subcategory_code"


@dataclass(frozen=True)
class ProtoClipInputs:
    split: str = "data/split.parquet"
    labels: str = "data/tables/labels.parquet"
    baseline: str = "data/features/baseline.parquet"
    image: str = "data/features/image_stats.parquet"
    text: str = "data/embeddings/minilm.parquet"


@dataclass(frozen=True)
class ProtoClipFeaturesConfig:
    early_stopping: str = "train_tail"  # train_tail (no val label reaches the table) | val
    es_fraction: float = 0.1           # train_tail: the latest fraction of the train period
    crossfit_folds: int = 4            # K >= 2: out-of-fold rows for train posts (0: none; GBDTs over-trust them)
    include_prediction: bool = False   # add the head's prediction as column pclip_pred
    estimator: dict = field(default_factory=dict)  # ProtoClipRegressor keyword arguments
    inputs: ProtoClipInputs = ProtoClipInputs()

    def __post_init__(self) -> None:
        if self.early_stopping not in ("val", "train_tail") or not 0 < self.es_fraction < 1:
            raise ValueError("protoclip: early_stopping val or train_tail, 0 < es_fraction < 1")
        if self.crossfit_folds == 1 or self.crossfit_folds < 0:
            raise ValueError("protoclip: crossfit_folds 0 or >= 2")
        unknown = set(self.estimator) - set(ProtoClipRegressor().get_params())
        if unknown:
            raise ValueError(f"protoclip: unknown estimator option(s) {sorted(unknown)}")


def protoclip_inputs(root: Path | str, inputs: ProtoClipInputs = ProtoClipInputs()
                     ) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    """(frame: pid, postdate, split, label sorted by pid; X (N, d) float64; column names of X)."""
    root = Path(root)
    frame = pl.read_parquet(root / inputs.split, columns=["pid", "postdate", "split"])
    frame = frame.join(pl.read_parquet(root / inputs.labels, columns=["pid", "label"]), on="pid", how="left")
    frame = frame.sort("pid")
    pid = frame["pid"].to_numpy()
    image = pl.read_parquet(root / inputs.image)
    img_cols = [c for c in image.columns if c.startswith("img_")]
    img = align_rows(pid, image["pid"].to_numpy(), image.select(pl.col(img_cols).cast(pl.Float64)).to_numpy())
    text_pid, _, emb = read_embeddings(root / inputs.text)
    base = pl.read_parquet(root / inputs.baseline, columns=["pid", CLASS_COLUMN])
    code = align_rows(pid, base["pid"].to_numpy(), base.select(pl.col(CLASS_COLUMN).cast(pl.Float64)).to_numpy())
    X = np.hstack([img, align_rows(pid, text_pid, emb.astype(np.float64)), code])
    names = img_cols + [f"emb_minilm_{i}" for i in range(emb.shape[1])] + [CLASS_COLUMN]
    return frame.select("pid", "postdate", "split", "label"), X, names


def _fit_rows(frame: pl.DataFrame, rows: np.ndarray, cfg: ProtoClipFeaturesConfig) -> tuple[np.ndarray, np.ndarray]:
    """(fit mask, early-stopping mask) for a head trained on ``rows`` (labelled train posts)."""
    if cfg.early_stopping == "val":
        return rows, (frame["split"] == "val").to_numpy() & frame["label"].is_not_null().to_numpy()
    date = frame["postdate"].to_numpy()
    cut = np.quantile(date[rows], 1.0 - cfg.es_fraction)
    return rows & (date < cut), rows & (date >= cut)


def _fit_head(X, y, frame, rows, names, cfg) -> ProtoClipRegressor:
    fit, es = _fit_rows(frame, rows, cfg)
    return ProtoClipRegressor.from_feature_names(names, **cfg.estimator).fit(X[fit], y[fit], X[es], y[es])


def _affine(z: np.ndarray) -> np.ndarray:
    """(n, P) -> (n, P + 1) with a column of ones (an intercept for least squares)."""
    return np.hstack([z, np.ones((len(z), 1))])


def _crossfit(X, y, frame, train, names, cfg, emb, pred) -> None:
    """Replace the train rows of ``emb`` / ``pred`` by out-of-fold values, aligned into emb's space."""
    idx = np.flatnonzero(train)
    fold = np.full(len(X), -1, np.int64)
    fold[idx] = np.random.default_rng(cfg.estimator.get("seed", 42)).permutation(len(idx)) % cfg.crossfit_folds
    for k in range(cfg.crossfit_folds):
        held, rest = fold == k, train & (fold != k)
        head = _fit_head(X, y, frame, rest, names, cfg)
        W = np.linalg.lstsq(_affine(head.transform(X[rest])), emb[rest], rcond=None)[0]  # (P + 1, P): fold -> main
        emb[held] = _affine(head.transform(X[held])) @ W
        pred[held] = head.predict(X[held])


def fit_protoclip(root: Path | str, cfg: ProtoClipFeaturesConfig = ProtoClipFeaturesConfig()
                  ) -> tuple[pa.Table, ProtoClipRegressor, dict]:
    """Fit the head on the labelled train posts; returns (feature table, fitted head, info for a report)."""
    t0 = time.perf_counter()
    frame, X, names = protoclip_inputs(root, cfg.inputs)
    y = frame["label"].fill_null(np.nan).to_numpy().astype(np.float64)
    train = (frame["split"] == "train").to_numpy() & np.isfinite(y)
    head = _fit_head(X, y, frame, train, names, cfg)
    emb = head.transform(X).astype(np.float64)  # (N, P)
    pred = head.predict(X)
    if cfg.crossfit_folds:
        _crossfit(X, y, frame, train, names, cfg, emb, pred)
    cols = {f"pclip_{i}": pa.array(emb[:, i], pa.float32()) for i in range(emb.shape[1])}
    if cfg.include_prediction:
        cols["pclip_pred"] = pa.array(pred, pa.float64())
    table = pa.table({"pid": pa.array(frame["pid"].to_numpy()), "postdate": pa.array(frame["postdate"].to_numpy()),
                      **cols})
    split = frame["split"].to_numpy()
    scored = {s: (split == s) & np.isfinite(y) for s in ("train", "val", "test")}
    info = {"best_epoch": head.best_iteration_, "epochs": len(head.history_), "n_train": int(train.sum()),
            "n_classes": head.n_classes_, "seconds": round(time.perf_counter() - t0, 1),
            "head_metrics": {s: regression_metrics(y[m], pred[m]) for s, m in scored.items()}}
    return table, head, info


def protoclip_features(root: Path | str, cfg: ProtoClipFeaturesConfig = ProtoClipFeaturesConfig()) -> pa.Table:
    """Feature-group builder: pid, postdate, pclip_0 .. pclip_{P-1} (float32) for every post, sorted by pid."""
    return fit_protoclip(root, cfg)[0]
