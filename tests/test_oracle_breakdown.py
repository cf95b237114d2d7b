"""models.oracle_breakdown on synthetic effects whose recovery is known by construction."""

import numpy as np
import pytest

from models.metrics import spearman
from models.oracle_breakdown import (earlier_visible_stats, effect_breakdown, explained_share, identity_from_history,
                                     latent_prediction, normal_scores)


def _world(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    a = 0.6 * rng.standard_normal(n)
    b = 0.4 * rng.standard_normal(n)
    c = 0.3 * rng.standard_normal(n)
    noise = 0.5 * rng.standard_normal(n)
    return {"a": a, "b": b, "c": c}, noise, a + b + c + noise


def test_full_recovery_and_full_miss():
    contrib, noise, label = _world()
    # recovers a and c exactly, misses b entirely; a monotone transform must not matter
    pred = np.exp(0.7 * (contrib["a"] + contrib["c"]))
    r = effect_breakdown(pred, contrib, label, noise)
    e = r["effects"]
    assert e["a"]["beta"] == pytest.approx(0.0, abs=0.03)
    assert e["c"]["beta"] == pytest.approx(0.0, abs=0.03)
    assert e["b"]["beta"] == pytest.approx(1.0, abs=0.03)
    assert e["b"]["missed_share"] == pytest.approx(e["b"]["share"], rel=0.08)
    assert e["a"]["missed_share"] < 1e-3
    assert r["eps_share"] < 0.01
    assert abs(r["noise_coef"]) < 0.03
    # adding b's missed part back gives the oracle's SRC
    assert e["b"]["src_if_fixed"] == pytest.approx(r["src"]["oracle"], abs=0.01)
    assert e["a"]["src_if_fixed"] == pytest.approx(r["src"]["model"], abs=0.005)
    assert r["src"]["model"] == pytest.approx(spearman(label, pred), abs=1e-12)


def test_partial_recovery_and_off_signal_error():
    contrib, noise, label = _world(seed=1)
    rng = np.random.default_rng(2)
    junk = 0.3 * rng.standard_normal(len(label))
    pred = contrib["a"] + 0.5 * contrib["b"] + junk  # half of b, none of c, plus error tied to no effect
    r = effect_breakdown(pred, contrib, label, noise)
    e = r["effects"]
    # the calibrated prediction is k * pred, k = cov(s, pred) / var(pred) = 0.44 / 0.49: the junk shrinks it
    k = (0.36 + 0.5 * 0.16) / (0.36 + 0.25 * 0.16 + 0.09)
    assert e["a"]["beta"] == pytest.approx(1 - k, abs=0.03)
    assert e["b"]["beta"] == pytest.approx(1 - 0.5 * k, abs=0.03)
    assert e["c"]["beta"] == pytest.approx(1.0, abs=0.03)
    assert r["eps_share"] > 0.03
    assert r["src"]["if_eps_removed"] > r["src"]["model"]
    assert e["a"]["beta_se"] < 0.02


def test_leaked_noise_is_flagged():
    contrib, noise, label = _world(seed=3)
    pred = contrib["a"] + contrib["b"] + contrib["c"] + noise  # predicts the label itself
    r = effect_breakdown(pred, contrib, label, noise)
    assert r["noise_coef"] > 0.5


def test_latent_prediction_keeps_ranks_and_scale():
    contrib, _, _ = _world(seed=4)
    s = contrib["a"] + contrib["b"] + contrib["c"]
    s_hat = latent_prediction(s ** 3, s)
    assert spearman(s_hat, s ** 3) == pytest.approx(1.0)
    assert np.std(s_hat) == pytest.approx(np.std(s), rel=0.02)
    q = normal_scores(np.array([3.0, 1.0, 2.0]))
    assert q[1] < q[2] < q[0] and q[2] == pytest.approx(0.0)


def test_constant_effect_is_left_out():
    contrib, noise, label = _world(n=500, seed=5)
    contrib["flat"] = np.full(500, 0.2)
    r = effect_breakdown(contrib["a"], contrib, label, noise)
    assert "flat" not in r["effects"] and set(r["effects"]) == {"a", "b", "c"}


def test_earlier_visible_stats():
    uid = np.array(["u", "u", "v", "u", "u", "v"])
    date = np.array([10, 20, 5, 20, 40, 6])
    vis = np.array([True, True, True, False, True, False])
    val = np.array([1.0, 3.0, 7.0, 100.0, 5.0, 9.0])
    n, mean = earlier_visible_stats(uid, date, vis, val)
    # u: t=10 none before; t=20 (twice) only t=10; t=40 sees 10 and 20 (visible one) -> 1, 3
    assert n.tolist() == [0, 1, 0, 1, 2, 1]
    assert mean.tolist() == [0.0, 1.0, 0.0, 1.0, 2.0, 7.0]


def test_identity_from_history_shrinks():
    ident = np.array([1.0, 1.0, 1.0])
    est = identity_from_history(ident, np.array([0, 1, 100]), np.zeros(3), var_identity=0.1, var_noise=0.2)
    assert est[0] == 0.0 and 0.3 < est[1] < 0.4 and est[2] == pytest.approx(1.0, abs=0.03)


def test_explained_share():
    rng = np.random.default_rng(6)
    x, z = rng.standard_normal(5000), rng.standard_normal(5000)
    y = x + z
    assert explained_share(y, x) == pytest.approx(0.5, abs=0.03)
    assert explained_share(y, x, controls=z) == pytest.approx(1.0, abs=1e-6)
    xm = x.copy()
    xm[:10] = np.nan
    assert explained_share(y, np.column_stack([xm, np.full(5000, np.nan)])) == pytest.approx(0.5, abs=0.03)
