"""``ProtoClipRegressor``: the prototype-CLIP head as a base learner on a 2-D float X.

X holds modality blocks side by side, located by keyword arguments: ``image_columns``,
``text_columns`` (column indices; with neither given every non-class column is one "image"
modality) and ``class_column`` (the subcategory code; negative / NaN / non-integer = unknown).
In ``fit`` (train rows only): every block is imputed and standardised
(``featurestore.standardise.fit_standardiser``), the target standardised; the class prototypes of each
modality come from up to ``max_members`` diverse train rows per class
(``models.protoclip.prototypes``) and are fed to the network at the median norm of that
modality's train rows (a unit prototype and a standardised sample then share one scale).

Loss (per sample, weights documented here and in ``reg_weight`` / ``cls_weight``):
    reg_weight * (pred - y_std)**2 + cls_weight * cross_entropy(logits, class)
with ``reg_weight = 1`` and ``cls_weight = 0.5`` by default; rows of unknown class get no
cross-entropy term. The class is the proxy target only, never an input. With
``sample_selection`` each epoch after ``select_after`` warm-up epochs trains only on the
``select_fraction`` (77%) of the train rows with the lowest per-sample loss under the current
weights (one extra inference pass per epoch) -- the seed method's noisy-label filter. It is off
by default: on the simulated set it moved the head's val SRC by less than 0.003 either way
(benchmarks/results/protoclip_ablation.md), not worth the extra pass.

``fit(X, y, X_val=None, y_val=None, num_boost_round=None)``: with (X_val, y_val) the epoch with
the lowest val MSE is kept (``best_iteration_``) and training stops ``patience`` epochs later;
``num_boost_round`` fixes the number of epochs. ``predict`` -> (n,), ``transform`` -> the
penultimate features (n, penultimate). With ``text_tower`` (an open_clip CLIP model) and
``class_names`` the class keys also get CoOp prompts (``models.protoclip.prompts``).
Deterministic on CPU for a fixed ``seed`` and ``num_threads``; the global torch RNG and thread
count are restored after every call.
"""

from __future__ import annotations

import contextlib
import copy
import logging

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from models.estimator_checks import AllowNaNMixin, check_fit_inputs, check_predict_input
from featurestore.standardise import apply_standardiser, fit_standardiser
from models.protoclip.modules import ProtoClipConfig, ProtoClipNet
from models.protoclip.prototypes import modality_prototypes

log = logging.getLogger(__name__)
PREFIXES = {"image": ("img_", "emb_image_"), "text": ("emb_minilm_", "emb_text_"), "class": ("base_cat_subcategory_code",)}


@contextlib.contextmanager
def torch_scope(threads: int | None, seed: int | None = None):
    """Set torch's thread count (and seed the RNG) inside; restore both afterwards."""
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        if threads:
            torch.set_num_threads(threads)
        if seed is not None:
            torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def class_codes(col: np.ndarray) -> np.ndarray:
    """(n,) raw class column -> (n,) int64 codes; -1 for unknown (NaN, negative, non-integer)."""
    col = np.asarray(col, dtype=np.float64)
    ok = np.isfinite(col) & (col >= 0) & (col == np.round(col))
    return np.where(ok, np.nan_to_num(col), -1).astype(np.int64)


class ProtoClipRegressor(AllowNaNMixin, RegressorMixin, TransformerMixin, BaseEstimator):
    """Prototype-CLIP head: adapters + prototype summaries + cross-modal attention; regression + class proxy."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # transform always gives float32 features
        return tags

    def __init__(self, *, image_columns: tuple[int, ...] | None = None, text_columns: tuple[int, ...] | None = None,
                 class_column: int | None = None, use_prototypes: bool = True, max_members: int = 256,
                 dim: int = 128, adapter_reduction: int = 4, adapter_ratio: float = 0.2, heads: int = 4,
                 penultimate: int = 32, dropout: float = 0.1, reg_weight: float = 1.0, cls_weight: float = 0.5,
                 sample_selection: bool = False, select_fraction: float = 0.77, select_after: int = 3,
                 batch_size: int = 256, lr: float = 3e-4, weight_decay: float = 1e-4, max_epochs: int = 40,
                 patience: int = 5, text_tower=None, class_names: tuple[str, ...] | None = None,
                 n_ctx_global: int = 4, n_ctx_local: int = 4, seed: int = 42, num_threads: int | None = 1,
                 verbose: bool = False):
        self.image_columns = image_columns
        self.text_columns = text_columns
        self.class_column = class_column
        self.use_prototypes = use_prototypes
        self.max_members = max_members
        self.dim = dim
        self.adapter_reduction = adapter_reduction
        self.adapter_ratio = adapter_ratio
        self.heads = heads
        self.penultimate = penultimate
        self.dropout = dropout
        self.reg_weight = reg_weight
        self.cls_weight = cls_weight
        self.sample_selection = sample_selection
        self.select_fraction = select_fraction
        self.select_after = select_after
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.text_tower = text_tower
        self.class_names = class_names
        self.n_ctx_global = n_ctx_global
        self.n_ctx_local = n_ctx_local
        self.seed = seed
        self.num_threads = num_threads
        self.verbose = verbose

    @classmethod
    def from_feature_names(cls, names, **params) -> "ProtoClipRegressor":
        """The column layout from feature names: image = ``img_*`` / ``emb_image_*``, text =
        ``emb_minilm_*`` / ``emb_text_*``, class = ``base_cat_subcategory_code``."""
        names = list(names)
        image = tuple(i for i, n in enumerate(names) if n.startswith(PREFIXES["image"]))
        text = tuple(i for i, n in enumerate(names) if n.startswith(PREFIXES["text"]))
        cls_idx = [i for i, n in enumerate(names) if n in PREFIXES["class"]]
        missing = [f"{kind} ({' or '.join(p + '*' if kind != 'class' else p for p in PREFIXES[kind])})"
                   for kind, found in (("image", image), ("text", text), ("class", cls_idx)) if not found]
        if missing:
            raise ValueError(f"ProtoClipRegressor.from_feature_names: no column for {', '.join(missing)}")
        return cls(image_columns=image, text_columns=text, class_column=cls_idx[0], **params)

    # ------------------------------------------------------------ layout and inputs
    def _layout(self, d: int) -> list[np.ndarray]:
        """Column indices of each non-empty modality block."""
        used = [] if self.class_column is None else [self.class_column]
        if self.class_column is not None and not -d <= self.class_column < d:
            raise ValueError(f"class_column {self.class_column} out of range for {d} columns")
        given = [c for c in (self.image_columns, self.text_columns) if c is not None]
        if not given:
            given = [[j for j in range(d) if j not in {u % d for u in used}]]
        blocks = [np.asarray(c, dtype=np.int64) for c in given if len(c)]
        flat = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
        if not len(flat) or flat.min() < 0 or flat.max() >= d or len(set(flat) | {u % d for u in used}) \
                != len(flat) + len(used):
            raise ValueError(f"image/text columns must be distinct indices in [0, {d}), disjoint from class_column")
        return blocks

    def _tensors(self, X: np.ndarray, dtype=np.float32) -> list[torch.Tensor]:
        """(n, d) raw -> one standardised tensor (n, d_m + missing flags) per modality."""
        return [torch.from_numpy(apply_standardiser(X[:, cols], st).astype(dtype))
                for cols, st in zip(self.columns_, self.stats_)]

    def _codes(self, X: np.ndarray) -> np.ndarray:
        if self.class_column is None:
            return np.full(len(X), -1, np.int64)
        return class_codes(X[:, self.class_column])

    # ------------------------------------------------------------ network
    def _build(self, blocks: list[torch.Tensor], codes: np.ndarray) -> ProtoClipNet:
        prompts = None
        n_classes = int(codes.max()) + 1 if (codes >= 0).any() else 0
        if self.text_tower is not None and n_classes:
            from models.protoclip.prompts import PromptConfig, PromptLearner

            if not self.class_names or len(self.class_names) < n_classes:
                raise ValueError(f"text_tower needs class_names for every class code (max code {n_classes - 1})")
            n_classes = len(self.class_names)
            prompts = PromptLearner(self.text_tower, tuple(self.class_names),
                                    PromptConfig(self.n_ctx_global, self.n_ctx_local, seed=self.seed))
        cfg = ProtoClipConfig(in_dims=tuple(b.shape[1] for b in blocks), n_classes=n_classes, dim=self.dim,
                              adapter_reduction=self.adapter_reduction, adapter_ratio=self.adapter_ratio,
                              heads=self.heads, penultimate=self.penultimate, dropout=self.dropout,
                              use_prototypes=self.use_prototypes,
                              prompt_dim=int(prompts().shape[1]) if prompts is not None else 0)
        net = ProtoClipNet(cfg, prompts)
        self.n_classes_ = n_classes
        if cfg.prototypes_on:
            arrays = {str(m): b.numpy() for m, b in enumerate(blocks)}
            self.prototypes_ = modality_prototypes(arrays, codes, n_classes=n_classes, max_members=self.max_members,
                                                   seed=self.seed)
            present = torch.from_numpy(self.prototypes_["0"].present)
            scales = [float(np.median(np.linalg.norm(b.numpy(), axis=1))) for b in blocks]
            net.set_prototypes([torch.from_numpy(self.prototypes_[str(m)].vectors) * s
                                for m, s in enumerate(scales)], present)
        else:
            self.prototypes_ = None
            net.present.copy_(torch.from_numpy(np.bincount(codes[codes >= 0], minlength=n_classes) > 0))
        return net

    def _sample_loss(self, net, blocks, y_std, codes) -> torch.Tensor:
        """(B,) per-sample loss: reg_weight * squared error + cls_weight * cross-entropy (known class)."""
        _, pred, logits = net(blocks)
        loss = self.reg_weight * (pred - y_std) ** 2
        if logits is not None and self.cls_weight:
            known = codes >= 0
            ce = F.cross_entropy(logits, codes.clamp(min=0), reduction="none")
            loss = loss + self.cls_weight * torch.where(known, ce, torch.zeros_like(ce))
        return loss

    def _selected(self, net, blocks, y_std, codes, epoch: int) -> torch.Tensor:
        """Train row indices of this epoch: all, or the select_fraction with the lowest loss."""
        n = len(y_std)
        if not self.sample_selection or epoch <= self.select_after or self.select_fraction >= 1:
            return torch.arange(n)
        net.eval()
        with torch.inference_mode():
            loss = torch.cat([self._sample_loss(net, [b[a:a + 8192] for b in blocks], y_std[a:a + 8192],
                                                codes[a:a + 8192]) for a in range(0, n, 8192)])
        keep = max(1, int(np.ceil(self.select_fraction * n)))
        return torch.sort(torch.argsort(loss, stable=True)[:keep]).values

    def _epoch(self, net, opt, blocks, y_std, codes, rows, gen) -> float:
        net.train()
        order = rows[torch.randperm(len(rows), generator=gen)]
        total = 0.0
        for a in range(0, len(order), self.batch_size):
            idx = order[a:a + self.batch_size]
            loss = self._sample_loss(net, [b[idx] for b in blocks], y_std[idx], codes[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / max(len(order), 1)

    def fit(self, X, y, X_val=None, y_val=None, num_boost_round: int | None = None) -> "ProtoClipRegressor":
        """Fit on (X, y); with (X_val, y_val) keep the epoch of lowest val MSE; ``num_boost_round`` = fixed epochs."""
        X, y, X_val, y_val = check_fit_inputs(self, X, y, X_val, y_val, ensure_all_finite=False, dtype=np.float64)
        if not 0 < self.select_fraction <= 1:
            raise ValueError("select_fraction must be in (0, 1]")
        self.columns_ = self._layout(X.shape[1])
        self.stats_ = [fit_standardiser(X[:, cols]) for cols in self.columns_]
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        codes_np = self._codes(X)
        blocks = self._tensors(X)
        y_std = torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32)
        epochs = num_boost_round or self.max_epochs
        with torch_scope(self.num_threads, self.seed):
            gen = torch.Generator().manual_seed(self.seed)
            self.net_ = net = self._build(blocks, codes_np)
            codes = torch.from_numpy(np.where(codes_np < self.n_classes_, codes_np, -1))
            opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=self.lr,
                                    weight_decay=self.weight_decay)
            self.history_, self.val_mse_, best, best_state = [], [], np.inf, None
            self.best_iteration_ = 0
            for epoch in range(1, epochs + 1):
                rows = self._selected(net, blocks, y_std, codes, epoch)
                row = {"epoch": epoch, "rows": len(rows),
                       "train_loss": self._epoch(net, opt, blocks, y_std, codes, rows, gen)}
                if X_val is not None:
                    row["val_mse"] = float(np.mean((self._forward(X_val)[1] - y_val) ** 2))
                    self.val_mse_.append(row["val_mse"])
                    if num_boost_round is None and row["val_mse"] < best:
                        best, self.best_iteration_ = row["val_mse"], epoch
                        best_state = copy.deepcopy(trainable_state(net))
                self.history_.append(row)
                if self.verbose:
                    log.info("protoclip epoch %d: %s", epoch, row)
                if best_state is not None and epoch - self.best_iteration_ >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state, strict=False)
        else:
            self.best_iteration_ = len(self.history_)
        net.eval()
        return self

    # ------------------------------------------------------------ inference
    def _forward(self, X: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(n, d) validated -> (penultimate (n, P) float32, prediction (n,) float64 in label units).

        Inference runs on a float64 copy of the network: float32 matrix products depend on the
        batch's size and make-up at the 1e-7 level, so a post's features would depend on which
        other posts are scored with it.
        """
        blocks = self._tensors(X, np.float64)
        net = copy.deepcopy(self.net_).double().eval()
        hs, ps = [], []
        with torch_scope(self.num_threads), torch.inference_mode():
            for a in range(0, len(X), batch):
                h, p, _ = net([b[a:a + batch] for b in blocks])
                hs.append(h.numpy())
                ps.append(p.numpy())
        return np.concatenate(hs).astype(np.float32), np.concatenate(ps) * self.y_std_ + self.y_mean_

    def predict(self, X) -> np.ndarray:
        """(n, d) -> (n,) float64 predicted labels."""
        check_is_fitted(self, "net_")
        return self._forward(check_predict_input(self, X, ensure_all_finite=False, dtype=np.float64))[1]

    def transform(self, X) -> np.ndarray:
        """(n, d) -> (n, penultimate) float32 penultimate features (the GBDT feature table)."""
        check_is_fitted(self, "net_")
        return self._forward(check_predict_input(self, X, ensure_all_finite=False, dtype=np.float64))[0]


def trainable_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without the frozen text tower (it never changes; no need to copy it)."""
    return {k: v for k, v in net.state_dict().items() if ".tower." not in k and not k.startswith("prompts.tower")}
