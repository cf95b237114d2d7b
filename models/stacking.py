"""Leakage-safe stacking: time-respecting out-of-fold predictions and meta-learners.

Only train rows are ever fitted on while building the stack:

1. ``time_folds`` cuts the train rows into contiguous blocks by post date;
2. ``oof_predictions`` fits one model per fold on that fold's training window (early stopping
   on the latest ``es_fraction`` of the window, never on the held-out block or the val split)
   and predicts the held-out block;
3. the meta-learner (``NonNegativeLinearStack`` or ``LGBMStack``) is fitted on the rows that
   have an out-of-fold prediction from every base learner;
4. each base learner is refitted on all train rows, early-stopped on the val split;
5. optionally (``StackedEnsemble.refit_full``, submit mode) each base learner is refitted once
   more on every labelled row (train + val) with a fixed iteration count from step 4.

The val split only chooses the refit's number of trees/epochs; the meta-learner never sees a
val or test label (its weights stay those fitted on the train OOF predictions after step 5).

Every fold fit of step 2 and every refit of steps 4 and 5 is an independent task (``fit_task``) of
the current executor (``featurestore.executor``): in order in this process by default, or one Ray
task each with the matrices shipped once; a fit's result does not depend on where it ran. A
data-parallel GBDT (``data_parallel_workers``) runs its fits from this process over Ray Train workers.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Callable, Iterable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from featurestore.executor import current_executor
from models.meta_learners import META_LEARNERS, LGBMStack, NonNegativeLinearStack
from models.metrics import regression_metrics

SCHEMES = ("expanding", "blocked")
Fold = tuple[np.ndarray, np.ndarray]  # (training row indices in time order, held-out row indices)


def time_folds(postdate: np.ndarray, n_folds: int, scheme: str = "expanding", gap: float = 0.0) -> list[Fold]:
    """Time-respecting folds over the train rows (indices into ``postdate``).

    ``postdate``: (n,) post times in seconds (unix time). Rows are ordered by (postdate, index)
    and cut into contiguous blocks of (almost) equal size.

    - ``"expanding"`` (default): n_folds + 1 blocks; fold k trains on blocks 0..k and predicts
      block k + 1. Block 0 never gets an out-of-fold prediction, so those rows are left out of
      the meta-learner's training data. Every training row is strictly earlier than the
      held-out block (rows tied with its first post date, or within ``gap`` seconds before
      it, are dropped from the training window), exactly as at prediction time.
    - ``"blocked"`` (purged K-fold): n_folds blocks; fold k predicts block k and trains on all
      other rows except those within ``gap`` seconds of the block on either side.

    Trade-off: "blocked" gives every row an OOF prediction and fold models nearly as large as
    the final one, but most folds train on the future of their held-out block, so trends in
    time (user growth, platform drift) leak into the OOF predictions and make the meta-learner
    over-trust the models that exploit them. "expanding" never uses the future, at the price
    of no OOF rows for the first block and smaller (weaker) models in the early folds.

    Returns one (train_idx, held_idx) pair per fold; train_idx is in chronological order.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    postdate = np.asarray(postdate, dtype=np.float64)
    n_blocks = n_folds + 1 if scheme == "expanding" else n_folds
    if n_folds < 1 or (scheme == "blocked" and n_folds < 2) or n_blocks > len(postdate):
        raise ValueError(f"cannot make {n_folds} {scheme} folds from {len(postdate)} rows")
    order = np.lexsort((np.arange(len(postdate)), postdate))
    blocks = np.array_split(order, n_blocks)
    folds = []
    for k in range(1 if scheme == "expanding" else 0, n_blocks):
        held = np.sort(blocks[k])
        lo, hi = postdate[held].min() - gap, postdate[held].max() + gap
        candidates = np.concatenate(blocks[:k]) if scheme == "expanding" else order
        keep = (postdate[candidates] < lo) | (postdate[candidates] > hi)
        train = candidates[keep]
        if train.size == 0:
            raise ValueError(f"fold {len(folds)}: empty training window (too many ties or too large a gap)")
        folds.append((train, held))
    return folds


def _factory(learner) -> Callable[[], BaseEstimator]:
    """An estimator (cloned per use), or a class or zero-argument callable returning a fresh one."""
    if hasattr(learner, "fit") and not isinstance(learner, type):
        return lambda: clone(learner)
    return learner


def _data_parallel(learner) -> bool:
    """Whether ``learner`` (an estimator, class or factory; maybe a ``ColumnSubset``) trains over Ray Train workers."""
    est = _factory(learner)()
    return bool(getattr(getattr(est, "estimator", est), "data_parallel_workers", None))


def internal_es_rows(rows: np.ndarray, es_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fitted rows, early-stopping rows): ``rows`` (chronological) without / with only their latest ``es_fraction``.

    The early-stopping part is empty when it would round to no row or to every row.
    """
    if not 0.0 <= es_fraction < 1.0:
        raise ValueError(f"es_fraction must be in [0, 1), got {es_fraction}")
    n_es = int(round(len(rows) * es_fraction))
    if n_es == 0 or n_es == len(rows):
        return rows, rows[:0]
    return rows[:-n_es], rows[-n_es:]


def fit_internal_es(make_estimator, X: np.ndarray, y: np.ndarray, rows: np.ndarray, es_fraction: float):
    """Fit a fresh estimator on X[rows], early-stopped on the latest ``es_fraction`` of ``rows``.

    ``rows`` must be in chronological order; with ``es_fraction == 0`` there is no early stopping.
    """
    fit_rows, es_rows = internal_es_rows(rows, es_fraction)
    est = _factory(make_estimator)()
    if es_rows.size == 0:
        return est.fit(X[fit_rows], y[fit_rows])
    return est.fit(X[fit_rows], y[fit_rows], X[es_rows], y[es_rows])


def scaled_rounds(best_iteration: int, n_full: int, n_fitted: int) -> int:
    """Iterations for a refit on ``n_full`` rows of a model that early-stopped at ``best_iteration``
    when fitted on ``n_fitted`` rows: ``round(best_iteration * n_full / n_fitted)``, at least 1.

    More rows support proportionally more boosting rounds before overfitting (the usual refit rule).
    """
    return max(1, int(round(best_iteration * n_full / max(n_fitted, 1))))


def refit_fixed(make_estimator, X: np.ndarray, y: np.ndarray, best_iteration: int, n_fitted: int, *,
                scale: bool = True) -> tuple[BaseEstimator, int]:
    """(a fresh estimator fitted on all of (X, y) without early stopping, its iteration count).

    The count is ``scaled_rounds(best_iteration, len(y), n_fitted)``; with ``scale=False`` it is
    ``best_iteration`` itself (epoch-based learners: an epoch already grows with the rows).
    """
    if best_iteration is None:
        raise ValueError("refit on all rows needs the validation fit's best_iteration_")
    rounds = scaled_rounds(best_iteration, len(y), n_fitted) if scale else max(1, int(best_iteration))
    return _factory(make_estimator)().fit(X, y, num_boost_round=rounds), rounds


def _check_folds(folds: list[Fold], n: int) -> None:
    """Every fold's training and held-out rows are disjoint, and no row is held out twice."""
    predicted = np.zeros(n, dtype=bool)
    for k, (train, held) in enumerate(folds):
        if np.intersect1d(train, held).size:
            raise RuntimeError(f"fold {k}: training rows overlap the held-out rows")
        if predicted[held].any():
            raise RuntimeError(f"fold {k}: a held-out row was already predicted by an earlier fold")
        predicted[held] = True


def fit_task(task: tuple, *, X: np.ndarray, y: np.ndarray, postdate: np.ndarray | None = None,
             folds: list[Fold] | None = None, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
             rows: np.ndarray | None = None):
    """One independent fit of a stack, as an executor task; returns (result, seconds).

    ``("fold", learner, k, es_fraction)``: fold k's model -> its predictions of the held-out rows;
    ``("refit", learner, es_fraction)``: the refit on all rows -> (model, rows fitted on);
    ``("refit_full", learner, best_iteration, n_fitted, scale)``: ``refit_fixed`` -> (model, rounds);
    ``("rows", learner, es_fraction)``: ``fit_internal_es`` on the chronological ``rows`` -> model.
    """
    t0 = time.perf_counter()
    kind, learner = task[0], task[1]
    if kind == "fold":
        train, held = folds[task[2]]
        out = fit_internal_es(learner, X, y, train, task[3]).predict(X[held])
    elif kind == "refit":
        out = refit_on_train(learner, X, y, postdate, X_val, y_val, task[2])
    elif kind == "refit_full":
        out = refit_fixed(learner, X, y, task[2], task[3], scale=task[4])
    elif kind == "rows":
        out = fit_internal_es(learner, X, y, rows, task[2])
    else:
        raise ValueError(f"unknown stack task {kind!r}")
    return out, time.perf_counter() - t0


def run_fits(tasks: list[tuple], shared: dict, on_result: Callable[[int], None] | None = None) -> list:
    """``[fit_task(t, **shared) for t in tasks]`` on the current executor, in task order; ``on_result(i)`` per fit.

    A data-parallel learner (``data_parallel_workers``) starts its own Ray Train workers, so its fits
    run from this process after the others, never inside a task.
    """
    here = [i for i, t in enumerate(tasks) if _data_parallel(t[1])]
    rest = [i for i in range(len(tasks)) if i not in set(here)]
    out: list = [None] * len(tasks)
    results = current_executor().run_tasks(fit_task, [tasks[i] for i in rest], shared=shared,
                                           on_result=None if on_result is None else lambda j: on_result(rest[j]))
    for i, result in zip(rest, results):
        out[i] = result
    for i in here:
        out[i] = fit_task(tasks[i], **shared)
        if on_result is not None:
            on_result(i)
    return out


def refit_on_train(learner, X, y, postdate, X_val, y_val, es_fraction: float) -> tuple[BaseEstimator, int]:
    """(learner fitted on all train rows, rows it was fitted on): early-stopped on (X_val, y_val), or without
    them on the latest ``es_fraction`` of the train rows like the fold models."""
    if X_val is not None:
        return _factory(learner)().fit(X, y, X_val, y_val), len(y)
    order = np.lexsort((np.arange(len(postdate)), postdate))
    return fit_internal_es(learner, X, y, order, es_fraction), len(internal_es_rows(order, es_fraction)[0])


def oof_predictions(make_estimator, X: np.ndarray, y: np.ndarray, folds: list[Fold], *,
                    es_fraction: float = 0.1, on_fit: Callable[[int], None] | None = None) -> np.ndarray:
    """(n,) out-of-fold predictions; NaN where a row is in no held-out block.

    ``make_estimator``: an estimator (cloned per fold) or a zero-argument factory. Each fold's
    model is early-stopped on the last ``es_fraction`` of its own training window (train
    indices come in time order from ``time_folds``); the val split is deliberately not an
    argument, so it cannot be used. ``on_fit(k)`` is called after fold k's model (progress).
    The folds are independent tasks of the current executor (``featurestore.executor``), X and y
    shipped once.
    """
    X, y = np.asarray(X), np.asarray(y, dtype=np.float64)
    _check_folds(folds, len(y))
    tasks = [("fold", make_estimator, k, es_fraction) for k in range(len(folds))]
    results = run_fits(tasks, {"X": X, "y": y, "folds": folds}, on_result=on_fit)
    oof = np.full(len(y), np.nan)
    for (_, held), (pred, _) in zip(folds, results):
        oof[held] = pred
    return oof


class StackedEnsemble(RegressorMixin, BaseEstimator):
    """Time-respecting out-of-fold stack of base learners (see the module docstring).

    ``base_learners``: name -> estimator (cloned for every fit) or zero-argument factory, each
    with the ``models.gbdt`` interface ``fit(X, y, X_val=None, y_val=None)``/``predict(X)``.
    ``meta``: "nnls", "lgbm" (seeded with ``seed``) or a meta-estimator (cloned).
    ``fold_learners``: name -> estimator or factory for the out-of-fold fits only (a cheaper
    budget, e.g. a larger learning rate: their predictions only weigh the learners); a name not
    given there uses its ``base_learners`` entry. The refits always use ``base_learners``.

    Fitted attributes:
    - ``folds_``: the ``time_folds`` used; ``oof_``: (n_train, n_learners) OOF predictions,
      NaN where missing; ``oof_mask_``: (n_train,) rows the meta-learner was fitted on;
    - ``meta_model_``; ``weights_``: name -> meta weight (NNLS weight, or LGBMStack gain
      share), None for a meta-estimator without ``weights_``; ``intercept_`` likewise;
    - ``base_models_``: name -> learner refitted on all train rows (after ``refit_full``: on all
      labelled rows); ``refit_rows_``: name -> rows that refit was fitted on (not early-stopped on);
    - ``refit_full_`` (only after ``refit_full``): name -> {best_iteration, rounds, n_rows};
    - ``fit_seconds_``: name -> {"folds": s, "refit": s} wall time (for logs, not for reports);
    - ``oof_metrics_``: name -> {src, mae, mse, n} on the OOF rows, plus "stack_in_sample"
      (the meta-learner scored on its own training rows, so optimistic).
    """

    def __init__(self, base_learners: dict, *, meta="nnls", n_folds: int = 5, scheme: str = "expanding",
                 gap: float = 0.0, es_fraction: float = 0.1, seed: int = 42, fold_learners: dict | None = None):
        self.base_learners = base_learners
        self.fold_learners = fold_learners
        self.meta = meta
        self.n_folds = n_folds
        self.scheme = scheme
        self.gap = gap
        self.es_fraction = es_fraction
        self.seed = seed

    def _make_meta(self) -> BaseEstimator:
        if isinstance(self.meta, str):
            if self.meta not in META_LEARNERS:
                raise ValueError(f"meta must be one of {sorted(META_LEARNERS)} or an estimator, got {self.meta!r}")
            return LGBMStack(seed=self.seed) if self.meta == "lgbm" else NonNegativeLinearStack()
        return clone(self.meta)

    def fit(self, X: np.ndarray, y: np.ndarray, postdate: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "StackedEnsemble":
        """X: (n, d) train features; y: (n,) train labels; postdate: (n,) seconds.

        (X_val, y_val) only early-stop the final refits; without them a refit is early-stopped
        on the latest ``es_fraction`` of the train rows, like the fold models.
        """
        X, y, postdate = np.asarray(X), np.asarray(y, dtype=np.float64), np.asarray(postdate, dtype=np.float64)
        if not len(X) == len(y) == len(postdate):
            raise ValueError(f"X, y, postdate lengths differ: {len(X)}, {len(y)}, {len(postdate)}")
        names = list(self.base_learners)
        unknown = set(self.fold_learners or {}) - set(names)
        if unknown:
            raise ValueError(f"fold_learners names learners that are not base learners: {sorted(unknown)}")
        self.n_features_in_ = X.shape[1]
        self.folds_ = time_folds(postdate, self.n_folds, self.scheme, self.gap)
        _check_folds(self.folds_, len(y))
        # every (learner, fold) fit and every refit is an independent task of the current executor
        k = len(self.folds_)
        tasks = [("fold", (self.fold_learners or {}).get(n, self.base_learners[n]), f, self.es_fraction)
                 for n in names for f in range(k)] + [("refit", self.base_learners[n], self.es_fraction) for n in names]
        shared = {"X": X, "y": y, "postdate": postdate, "folds": self.folds_, "X_val": X_val, "y_val": y_val}
        results = self._run(tasks, shared, [n for n in names for _ in range(k)] + names, "stack")
        self.oof_ = np.full((len(y), len(names)), np.nan)
        self.fit_seconds_, self.base_models_, self.refit_rows_ = {}, {}, {}
        for j, n in enumerate(names):
            for (_, held), (pred, _) in zip(self.folds_, results[j * k:(j + 1) * k]):
                self.oof_[held, j] = pred
            (self.base_models_[n], self.refit_rows_[n]), refit_s = results[len(names) * k + j]
            self.fit_seconds_[n] = {"folds": round(sum(s for _, s in results[j * k:(j + 1) * k]), 1),
                                    "refit": round(refit_s, 1)}
        self.oof_mask_ = np.isfinite(self.oof_).all(axis=1)
        self.meta_model_ = self._make_meta().fit(self.oof_[self.oof_mask_], y[self.oof_mask_])
        weights = getattr(self.meta_model_, "weights_", None)
        self.weights_ = None if weights is None else dict(zip(names, map(float, weights)))
        self.intercept_ = getattr(self.meta_model_, "intercept_", None)
        self.oof_metrics_ = self._oof_metrics(names, y)
        return self

    @staticmethod
    def _run(tasks: list[tuple], shared: dict, owners: list[str], desc: str) -> list:
        """``fit_task`` over ``tasks`` on the current executor, one progress step per finished fit."""
        with tqdm(total=len(tasks), desc=desc, unit="fit") as bar:
            def done(i: int) -> None:
                bar.set_postfix_str(f"{owners[i]} {tasks[i][0]}")
                bar.update(1)

            return run_fits(tasks, shared, on_result=done)

    def refit_full(self, X: np.ndarray, y: np.ndarray, *, unscaled: Iterable[str] = ()) -> "StackedEnsemble":
        """Refit every base learner on all labelled rows X (n_all, d), y (n_all,), without early stopping.

        A learner's iteration count is its validation fit's ``best_iteration_`` scaled by
        n_all / the rows that fit was fitted on (``scaled_rounds``); learners named in ``unscaled``
        (epoch-based heads, whose epochs already grow with the rows) keep ``best_iteration_``.
        The OOF predictions and the meta-learner (its weights) are kept as fitted on train.
        """
        check_is_fitted(self, "base_models_")
        X, y = np.asarray(X), np.asarray(y, dtype=np.float64)
        unscaled, names, self.refit_full_ = set(unscaled), list(self.base_models_), {}
        best = {n: getattr(self.base_models_[n], "best_iteration_", None) for n in names}
        tasks = [("refit_full", self.base_learners[n], best[n], self.refit_rows_[n], n not in unscaled) for n in names]
        results = self._run(tasks, {"X": X, "y": y}, names, "stack refit on all labels")
        for n, ((_, rounds), seconds) in zip(names, results):
            self.refit_full_[n] = {"best_iteration": int(best[n]), "rounds": rounds, "n_rows": len(y)}
            self.fit_seconds_.setdefault(n, {})["refit_full"] = round(seconds, 1)
        self.base_models_ = {n: model for n, ((model, _), _) in zip(names, results)}
        return self

    def _oof_metrics(self, names: list[str], y: np.ndarray) -> dict[str, dict]:
        m, P = self.oof_mask_, self.oof_[self.oof_mask_]
        out = {n: regression_metrics(y[m], P[:, j]) for j, n in enumerate(names)}
        out["stack_in_sample"] = regression_metrics(y[m], self.meta_model_.predict(P))
        return out

    def predict_base(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """(n, d) -> name -> (n,) prediction of each refitted base learner."""
        return {n: call() for n, call in self.base_calls(X).items()}

    def base_calls(self, X: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
        """name -> the call that gives ``predict_base(X)[name]`` (independent calls: any order, any thread)."""
        check_is_fitted(self, "base_models_")
        return {n: partial(_float64_predict, model, X) for n, model in self.base_models_.items()}

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, d) -> (n,) meta-learner prediction over the base learners' predictions."""
        return self.combine(self.predict_base(X))

    def combine(self, base: dict[str, np.ndarray]) -> np.ndarray:
        """The meta-learner's prediction from ``predict_base``'s output (``predict``'s last step)."""
        return self.meta_model_.predict(np.column_stack([base[n] for n in self.base_models_]))


def _float64_predict(model, X: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(X), dtype=np.float64)
