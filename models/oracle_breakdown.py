"""Which simulated effects a model recovers: its error broken down by the oracle's effect contributions.

Simulated data only. The simulator (``featurestore/simulate.py``) builds each post's latent score
``z = signal + noise`` with ``signal = sum_e c_e`` (one contribution ``c_e`` per planted effect:
user influence, user identity, category, image, text, time of day, trend, geo, hot = similar
recent posts, media) and the label is a monotone map of ``z``; ``expected_label`` is a monotone
map of ``signal``. The decomposition therefore works in latent units, where the effects add:

1. Latent prediction. The prediction ``p`` is put on the latent scale rank-preservingly: its
   normal scores ``q = Phi^-1((rank(p) - 1/2) / n)`` scaled by least squares onto the signal,
   ``s_hat = mean(s) + b (q - mean(q))``, ``b = cov(s, q) / var(q)``. ``s_hat`` ranks the posts
   exactly as ``p`` does, so every SRC below is the model's own SRC.
2. Joint fit. The residual ``r = s - s_hat`` is regressed on all centred contributions at once,
   ``r = a + sum_e beta_e c_e + eps`` (ordinary least squares). ``beta_e = 0``: the prediction moves
   one-for-one with effect e (fully recovered); ``beta_e = 1``: it does not move with it at all
   (fully missed); ``0 < beta_e < 1``: partly recovered (shrunk). Because ``s = sum_e c_e``
   exactly, ``beta_e = 1 - gamma_e`` where ``gamma_e`` is the coefficient of ``s_hat`` itself on
   the contributions. ``eps`` is error in the prediction that moves with no effect (fitting
   noise, over-fitting, non-linear misfit); the ``noise`` column, when given, is a regressor too,
   and its coefficient ``gamma_noise = -beta_noise`` should be ~0 (a leakage check).
   ``s_hat`` is the prediction's best linear calibration, so a prediction carrying off-signal error
   is shrunk as a whole (``b < 1`` per unit of loading): that uniform shrinkage is part of every
   ``beta_e``, and ``Var(s - s_hat) = Var(sum_e beta_e c_e) + Var(eps)`` is its mean squared error.
3. Sizes. ``Var(c_e)`` is the effect's variance; ``beta_e^2 Var(c_e)`` the part of it left in
   the residual ("missed variance"), both reported as shares of ``Var(z)`` (the latent label;
   with the noise's own share the effect shares then sum to ~1 when the effects are uncorrelated).
4. What fixing it is worth. ``src_if_fixed``: the SRC against the label of
   ``s_hat + beta_e c_e`` (the prediction with effect e's missed part added back), next to the
   SRC of ``s_hat`` itself and the oracle's SRC (``expected_label`` vs label, the ceiling).

numpy and scipy (rank, normal quantile) only; ``spearman`` from ``models.metrics``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from models.metrics import spearman

# the simulator's effect contributions, in featurestore.simulate.EFFECT_SD order
EFFECTS = ("user_influence", "user_identity", "category", "image", "text", "time_of_day", "trend", "geo", "hot",
           "media")


def normal_scores(x: np.ndarray) -> np.ndarray:
    """(n,) rank-based normal scores ``Phi^-1((rank - 1/2) / n)`` (average ranks for ties)."""
    x = np.asarray(x, dtype=np.float64)
    return ndtri((rankdata(x) - 0.5) / len(x))


def latent_prediction(pred: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """(n,) the prediction on the signal's latent scale: its normal scores fitted to ``signal`` by
    least squares (a monotone, rank-preserving map of ``pred``)."""
    q = normal_scores(pred)
    s = np.asarray(signal, dtype=np.float64)
    qc = q - q.mean()
    b = float(qc @ (s - s.mean()) / (qc @ qc)) if qc @ qc > 0 else 0.0
    return s.mean() + b * qc


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients, standard errors (classical) and residuals of y on [1, x] (intercept dropped)."""
    n, k = x.shape
    design = np.column_stack([np.ones(n), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = max(n - k - 1, 1)
    cov = (resid @ resid / dof) * np.linalg.pinv(design.T @ design)
    return coef[1:], np.sqrt(np.maximum(np.diag(cov)[1:], 0.0)), resid


def residual_fit(pred: np.ndarray, contrib: dict[str, np.ndarray], noise: np.ndarray | None = None) -> dict:
    """Steps 1-2 of the module docstring: ``{"names", "c" (n, k) contributions, "s", "s_hat", "beta",
    "beta_se", "eps"}``; with ``noise`` its coefficient is the last entry of ``beta``.
    Effects constant over these posts are left out (``names`` lists the ones kept)."""
    names = [k for k in contrib if np.asarray(contrib[k], dtype=np.float64).std() > 0]
    c = np.column_stack([np.asarray(contrib[k], dtype=np.float64) for k in names])
    s = c.sum(axis=1)
    if len(s) < len(names) + 3:
        raise ValueError(f"residual_fit: {len(s)} posts for {len(names)} effects")
    s_hat = latent_prediction(pred, s)
    x = c if noise is None else np.column_stack([c, np.asarray(noise, dtype=np.float64)])
    beta, se, eps = _ols(s - s_hat, x)
    return {"names": names, "c": c, "s": s, "s_hat": s_hat, "beta": beta, "beta_se": se, "eps": eps}


def effect_breakdown(pred: np.ndarray, contrib: dict[str, np.ndarray], label: np.ndarray | None = None,
                     noise: np.ndarray | None = None) -> dict:
    """The decomposition of the module docstring for one set of posts.

    pred: (n,) the model's predictions; contrib: effect name -> (n,) contribution (their sum is the
    signal); label: (n,) the realised labels (for the SRC figures); noise: (n,) the latent noise
    (for the variance shares and the leakage check). Returns ``{"n", "var_z", "signal_share",
    "noise_share", "eps_share", "residual_share", "src": {...}, "effects": {name: {...}}[, "noise_coef",
    "noise_coef_se"]}``; each effect's entry has ``share`` (Var(c_e) / Var(z)), ``beta``, ``beta_se``,
    ``recovered`` (1 - beta), ``missed_share`` (beta^2 Var(c_e) / Var(z)) and, with labels,
    ``src_if_fixed`` (SRC of the prediction with the effect's missed part added back).
    """
    f = residual_fit(pred, contrib, noise)
    s, s_hat, c, beta, se, eps = f["s"], f["s_hat"], f["c"], f["beta"], f["beta_se"], f["eps"]
    var_z = float(np.var(s + noise)) if noise is not None else float(np.var(s))
    out: dict = {"n": len(s), "var_z": var_z, "signal_share": float(np.var(s) / var_z),
                 "noise_share": float(np.var(noise) / var_z) if noise is not None else 0.0,
                 "eps_share": float(np.var(eps) / var_z), "residual_share": float(np.var(s - s_hat) / var_z),
                 "effects": {}}
    src: dict[str, float] = {"pred_vs_signal": spearman(s, s_hat)}
    if label is not None:
        label = np.asarray(label, dtype=np.float64)
        src |= {"model": spearman(label, s_hat), "oracle": spearman(label, s)}
        src["ratio"] = src["model"] / src["oracle"] if src["oracle"] else float("nan")
        src["if_eps_removed"] = spearman(label, s_hat + eps)
    out["src"] = src
    for j, name in enumerate(f["names"]):
        cj = c[:, j] - c[:, j].mean()
        v = float(np.var(cj))
        e = {"share": v / var_z, "beta": float(beta[j]), "beta_se": float(se[j]), "recovered": float(1 - beta[j]),
             "missed_share": float(beta[j] ** 2 * v / var_z)}
        if label is not None:
            e["src_if_fixed"] = spearman(label, s_hat + beta[j] * cj)
        out["effects"][name] = e
    if noise is not None:
        out["noise_coef"], out["noise_coef_se"] = float(-beta[-1]), float(se[-1])
    return out


def explained_share(y: np.ndarray, x: np.ndarray, controls: np.ndarray | None = None) -> float:
    """Share of Var(y) that ``x`` explains linearly beyond ``controls`` (both with an intercept):
    ``1 - Var(resid | x, controls) / Var(resid | controls)``. NaNs in ``x`` become the column mean
    plus a missing-indicator column."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    miss = np.isnan(x)
    fill = np.where(miss, 0.0, x).sum(axis=0) / np.maximum((~miss).sum(axis=0), 1)
    x = np.column_stack([np.where(miss, fill, x), miss[:, miss.any(axis=0) & ~miss.all(axis=0)]])
    x = x[:, x.std(axis=0) > 0]
    base = np.zeros((len(y), 0)) if controls is None else np.asarray(controls, dtype=np.float64).reshape(len(y), -1)
    r0 = _ols(y, base)[2] if base.shape[1] else y - y.mean()
    r1 = _ols(y, np.column_stack([base, x]))[2]
    return float(1.0 - np.var(r1) / np.var(r0)) if np.var(r0) > 0 else float("nan")


def earlier_visible_stats(uid: np.ndarray, postdate: np.ndarray, visible: np.ndarray,
                          value: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per post (n,): the number of the same user's strictly earlier posts whose labels are visible
    (what the point-in-time user-history features see), and the mean of ``value`` over those posts
    (0 where there are none, or when ``value`` is None)."""
    uid = np.asarray(uid)
    postdate = np.asarray(postdate, dtype=np.int64)
    visible = np.asarray(visible, dtype=bool)
    val = np.zeros(len(uid)) if value is None else np.asarray(value, dtype=np.float64)
    _, code = np.unique(uid, return_inverse=True)
    order = np.lexsort((postdate, code))
    count, total = np.zeros(len(uid), dtype=np.int64), np.zeros(len(uid))
    cs, ts, vs, xs = code[order], postdate[order], visible[order], val[order]
    start = 0
    for end in np.append(np.flatnonzero(np.diff(cs)) + 1, len(cs)).tolist():
        t = ts[start:end]
        k = np.searchsorted(t, t, side="left")  # posts of this user with time < t
        count[order[start:end]] = np.concatenate([[0], np.cumsum(vs[start:end])])[k]
        total[order[start:end]] = np.concatenate([[0.0], np.cumsum(np.where(vs[start:end], xs[start:end], 0.0))])[k]
        start = end
    return count, np.divide(total, count, out=np.zeros(len(uid)), where=count > 0)


def identity_from_history(identity: np.ndarray, n_prev: np.ndarray, prev_noise_mean: np.ndarray,
                          var_identity: float, var_noise: float) -> np.ndarray:
    """(n,) the best a model could know of a post's user-identity contribution from the user's
    earlier visible labels: the posterior mean ``lambda_n (c_id + mean earlier noise)``,
    ``lambda_n = n v_id / (n v_id + v_noise)``, assuming every other effect of those posts known
    (an upper bound; 0 for users with no earlier visible label)."""
    n = np.asarray(n_prev, dtype=np.float64)
    lam = n * var_identity / (n * var_identity + var_noise)
    return lam * (np.asarray(identity, dtype=np.float64) + np.asarray(prev_noise_mean, dtype=np.float64))
