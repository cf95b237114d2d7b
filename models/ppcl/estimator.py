"""``PPCLRegressor``: PPCL (popularity prediction with contrastive learning) as a base learner.

Same interface as the GBDT wrappers (models/gbdt.py):
``fit(X, y, X_val=None, y_val=None, num_boost_round=None)`` where ``num_boost_round`` fixes the
number of epochs, ``predict(X)``, ``best_iteration_`` (epochs kept), ``n_features_in_``; plus
``transform(X)``: the predictor's penultimate features (n, hidden) for a feature table.

X is a 2-D float array whose columns play the roles named by the keyword arguments (indices;
see ``models/ppcl/preprocess.py`` and ``from_feature_names``). With no roles given, every column
is a text-embedding column and only the regression loss applies.

Training (all statistics from the rows passed to ``fit``): text and image columns standardised
(median-imputed, missing flags), user numeric columns min-max scaled to [0, 1], categorical codes
mapped through the train vocabulary (unseen -> unknown), K-means (``n_clusters``, fixed seed) of
the min-max-scaled influence columns for UISD, the label standardised. Each batch (from the
hierarchical sampler when category columns are given) passes through the network twice in
train mode; MSE is averaged over both dropout views and the contrastive terms are taken on the
2B views (models/ppcl/losses.py). Early stopping keeps the epoch with the lowest (X_val, y_val)
MSE and stops ``patience`` epochs after it. Runs are deterministic on CPU for a fixed ``seed``
and ``num_threads``; the global torch RNG and thread count are restored afterwards.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input
from featurestore.standardise import apply_standardiser, fit_standardiser
from models.ppcl import preprocess as pp
from models.ppcl.losses import (LEVEL_WEIGHTS, TaskWeights, hierarchical_supcon_loss, label_positive_mask,
                                supcon_loss, total_loss)
from models.ppcl.modules import PPCLConfig, PPCLInputs, PPCLNet
from models.ppcl.sampler import HierarchicalBatchSampler, uniform_batches

log = logging.getLogger(__name__)
SAMPLERS = ("hierarchical", "uniform")


@contextmanager
def torch_session(seed: int, threads: int | None):
    """Seeded torch RNG and a thread count for the block; both restored on exit."""
    old = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(old)


class PPCLRegressor(AllowNaNMixin, TransformerMixin, RegressorMixin, BaseEstimator):
    """Post + user encoders and a popularity predictor, trained with MSE + CRD / UISD / UID SupCon.

    Also a transformer: ``transform`` gives the predictor's penultimate features (float32).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # transform returns float32 whatever the input dtype
        return tags

    def __init__(self, *, text_columns=None, image_columns=(), user_numeric_columns=(), user_categorical_columns=(),
                 category_columns=None, user_id_column=None, influence_columns=None, embed_user_id: bool = True,
                 task_weights=None, contrastive_weight: float = 0.1, temperature: float = 0.1,
                 level_weights: tuple[float, ...] = LEVEL_WEIGHTS, n_clusters: int = 40,
                 sampler: str = "hierarchical", posts_per_concept: int = 4, pieces_per_segment: int = 4,
                 hidden: int = 128, adapter_reduction: int = 4, cat_dim: int = 16, cross_layers: int = 4,
                 proj_dim: int = 64, dropout: float = 0.1, batch_size: int = 256, lr: float = 1e-3,
                 weight_decay: float = 1e-4, max_epochs: int = 30, patience: int = 5, seed: int = 42,
                 num_threads: int | None = 1, verbose: bool = False):
        self.text_columns = text_columns
        self.image_columns = image_columns
        self.user_numeric_columns = user_numeric_columns
        self.user_categorical_columns = user_categorical_columns
        self.category_columns = category_columns
        self.user_id_column = user_id_column
        self.influence_columns = influence_columns
        self.embed_user_id = embed_user_id
        self.task_weights = task_weights
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
        self.level_weights = level_weights
        self.n_clusters = n_clusters
        self.sampler = sampler
        self.posts_per_concept = posts_per_concept
        self.pieces_per_segment = pieces_per_segment
        self.hidden = hidden
        self.adapter_reduction = adapter_reduction
        self.cat_dim = cat_dim
        self.cross_layers = cross_layers
        self.proj_dim = proj_dim
        self.dropout = dropout
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.num_threads = num_threads
        self.verbose = verbose

    @classmethod
    def from_feature_names(cls, names, **params) -> "PPCLRegressor":
        """An estimator whose column roles come from feature names (``preprocess.layout_from_names``).

        ``influence_columns`` may be given as names; other ``params`` are passed through.
        """
        influence = params.pop("influence_columns", None)
        return cls(**pp.layout_from_names(names, influence), **params)

    # ------------------------------------------------------------ preprocessing (fitted on train)
    def _fit_preprocessing(self, X: np.ndarray) -> None:
        L = self.layout_
        self.text_stats_ = fit_standardiser(X[:, L.text]) if L.text else None
        self.image_stats_ = fit_standardiser(X[:, L.image]) if L.image else None
        self.numeric_stats_ = pp.fit_minmax(X[:, L.numeric])
        self.vocabularies_ = pp.fit_vocabularies(X[:, self._code_columns()])

    def _code_columns(self) -> list[int]:
        L = self.layout_
        uid = [L.user_id] if self.embed_user_id and L.user_id is not None else []
        return [*L.categorical, *uid]

    def _inputs(self, X: np.ndarray) -> PPCLInputs:
        """(n, d) raw -> network inputs (float32 / int64 tensors)."""
        L = self.layout_

        def block(cols, stats):
            z = apply_standardiser(X[:, cols], stats) if cols else np.zeros((len(X), 0))
            return torch.from_numpy(z.astype(np.float32))

        numeric = pp.apply_minmax(X[:, L.numeric], self.numeric_stats_)
        codes = pp.apply_vocabularies(X[:, self._code_columns()], self.vocabularies_)
        return PPCLInputs(block(L.text, self.text_stats_), block(L.image, self.image_stats_),
                          torch.from_numpy(numeric.astype(np.float32)), torch.from_numpy(codes))

    def _fit_clusters(self, X: np.ndarray) -> np.ndarray | None:
        """K-means of the train rows' scaled influence columns -> (n,) cluster labels, or None (UISD off)."""
        L = self.layout_
        if not self.weights_.uisd or not L.influence:
            self.kmeans_ = None
            return None
        self.influence_stats_ = pp.fit_minmax(X[:, L.influence])
        Z = pp.apply_minmax(X[:, L.influence], self.influence_stats_)
        k = min(self.n_clusters, len(np.unique(Z, axis=0)))
        with threadpool_limits(self.num_threads or 1):
            self.kmeans_ = KMeans(n_clusters=k, n_init=4, random_state=self.seed).fit(Z)
        return self.kmeans_.labels_.astype(np.int64)

    def _config(self, inputs: PPCLInputs) -> PPCLConfig:
        return PPCLConfig(text_dim=inputs.text.shape[1], image_dim=inputs.image.shape[1],
                          user_numeric_dim=inputs.numeric.shape[1],
                          user_cardinalities=tuple(len(v) + 1 for v in self.vocabularies_), hidden=self.hidden,
                          adapter_reduction=self.adapter_reduction, cat_dim=self.cat_dim,
                          cross_layers=self.cross_layers, proj_dim=self.proj_dim, dropout=self.dropout)

    # ------------------------------------------------------------ training
    def _check_params(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not 0 <= self.contrastive_weight <= 1 or self.temperature <= 0:
            raise ValueError("0 <= contrastive_weight <= 1 and temperature > 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1 or self.n_clusters < 1:
            raise ValueError("batch_size, max_epochs, patience and n_clusters must be >= 1")

    def _batch_loss(self, net: PPCLNet, x: PPCLInputs, y: torch.Tensor, labels: dict) -> tuple[torch.Tensor, dict]:
        """Two dropout views of the batch -> (total loss, {term: value})."""
        a, b = net(x), net(x)
        mse = 0.5 * (F.mse_loss(a.pred, y) + F.mse_loss(b.pred, y))
        w, tau, terms = self.weights_, self.temperature, {}
        if w.crd and "paths" in labels:
            z = net.heads["crd"](torch.cat([a.post, b.post]))  # (2B, P)
            terms["crd"] = hierarchical_supcon_loss(z, labels["paths"], tau, self.level_weights)
        if w.uisd and "clusters" in labels and a.user is not None:
            z = net.heads["uisd"](torch.cat([a.user, b.user]))
            terms["uisd"] = supcon_loss(z, label_positive_mask(labels["clusters"]), tau)
        if w.uid and "users" in labels:
            h = torch.cat([net.uid_hidden(a.post, a.user), net.uid_hidden(b.post, b.user)])  # (2B, H), encoders detached
            terms["uid"] = supcon_loss(net.heads["uid"](h), label_positive_mask(labels["users"]), tau)
        loss = total_loss(mse, terms, w, self.contrastive_weight)
        return loss, {"mse": mse.item(), **{k: v.item() for k, v in terms.items()}}

    def _labels(self, X: np.ndarray, clusters: np.ndarray | None) -> dict[str, torch.Tensor]:
        L, out = self.layout_, {}
        if L.category:
            out["paths"] = torch.from_numpy(pp.codes(X[:, L.category]))  # (n, 3)
        if clusters is not None:
            out["clusters"] = torch.from_numpy(clusters)
        if L.user_id is not None:
            out["users"] = torch.from_numpy(pp.codes(X[:, [L.user_id]])[:, 0])
        return out

    def _batches(self, n: int, labels: dict, epoch: int) -> list[np.ndarray]:
        if self.sampler == "hierarchical" and "paths" in labels:
            s = HierarchicalBatchSampler(labels["paths"].numpy(), self.batch_size, seed=self.seed,
                                         posts_per_concept=self.posts_per_concept,
                                         pieces_per_segment=self.pieces_per_segment)
            s.set_epoch(epoch)
            return s.batches()
        return uniform_batches(n, self.batch_size, np.random.default_rng([self.seed, epoch]))

    def _epoch(self, net, opt, x: PPCLInputs, y: torch.Tensor, labels: dict, epoch: int) -> dict:
        net.train()
        sums, n = {}, 0
        for idx in self._batches(len(y), labels, epoch):
            t = torch.from_numpy(idx)
            loss, parts = self._batch_loss(net, x.rows(t), y[t], {k: v[t] for k, v in labels.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k, v in {"loss": loss.item(), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v * len(idx)
            n += len(idx)
        return {k: v / n for k, v in sums.items()}

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round: int | None = None) -> "PPCLRegressor":
        """Fit on (X, y); with (X_val, y_val) keep the epoch of lowest val MSE (early stopping).

        ``num_boost_round`` fixes the number of epochs (no early stopping).
        """
        self._check_params()
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False,
                                              dtype=np.float64, ensure_min_samples=2)
        self.weights_ = TaskWeights.parse(self.task_weights)
        self.layout_ = pp.resolve_layout(
            X.shape[1], text=self.text_columns, image=self.image_columns, numeric=self.user_numeric_columns,
            categorical=self.user_categorical_columns, category=self.category_columns, user_id=self.user_id_column,
            influence=self.influence_columns)
        self._fit_preprocessing(X)
        labels = self._labels(X, self._fit_clusters(X))
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        early = X_val is not None and num_boost_round is None
        with torch_session(self.seed, self.num_threads):
            x = self._inputs(X)
            y_t = torch.from_numpy(((y - self.y_mean_) / self.y_std_).astype(np.float32))
            self.config_ = self._config(x)
            self.net_ = PPCLNet(self.config_)
            opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            x_val = self._inputs(X_val) if early else None
            self.history_, self.val_mse_, best_state = [], [], None
            for epoch in range(1, (num_boost_round or self.max_epochs) + 1):
                row = {"epoch": epoch, **self._epoch(self.net_, opt, x, y_t, labels, epoch)}
                if early:
                    row["val_mse"] = float(np.mean((self._predict_inputs(x_val) - y_val) ** 2))
                    if row["val_mse"] < min(self.val_mse_, default=np.inf):  # strict: ties keep the first, as argmin
                        best_state = copy.deepcopy(self.net_.state_dict())
                    self.val_mse_.append(row["val_mse"])
                self.history_.append(row)
                if self.verbose:
                    log.info("ppcl epoch %s", row)
                if early and epoch - (int(np.argmin(self.val_mse_)) + 1) >= self.patience:
                    break
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        self.best_iteration_ = int(np.argmin(self.val_mse_)) + 1 if early else len(self.history_)
        self.net_.eval()
        return self

    # ------------------------------------------------------------ inference
    def _forward(self, x: PPCLInputs, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """-> (hidden (n, H) float32, prediction (n,) in label units float64)."""
        self.net_.eval()
        hs, ps = [], []
        with torch.inference_mode():
            for a in range(0, len(x.text), batch):
                out = self.net_(x.rows(slice(a, a + batch)))
                hs.append(out.hidden.numpy())
                ps.append(out.pred.numpy())
        pred = np.concatenate(ps).astype(np.float64) * self.y_std_ + self.y_mean_
        return np.concatenate(hs), pred

    def _predict_inputs(self, x: PPCLInputs) -> np.ndarray:
        pred = self._forward(x)[1]
        self.net_.train()
        return pred

    def _run(self, X) -> tuple[np.ndarray, np.ndarray]:
        X = check_predict_input(self, X, ensure_all_finite=False, dtype=np.float64)
        with torch_session(self.seed, self.num_threads):
            return self._forward(self._inputs(X))

    def predict(self, X) -> np.ndarray:
        """(n, d) -> (n,) float64 predicted labels."""
        return self._run(X)[1]

    def transform(self, X) -> np.ndarray:
        """(n, d) -> (n, hidden) float32: the popularity predictor's penultimate features."""
        return self._run(X)[0]
