"""The candidate pass of the one-post neighbour search: proven bounds, a superset of the exact top k."""

import numpy as np
import pytest

from featurestore.exact_similarity import pad_columns, pair_similarities
from featurestore.projected_bounds import ProjectedBounds
from featurestore.sequence_online import _candidates


def _rows(n: int, d: int, seed: int) -> np.ndarray:
    """Unit rows with a few strong directions (like a real embedding), some exact duplicates and a zero row."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)) @ rng.standard_normal((6, d)) * 3 + rng.standard_normal((n, d))
    if n > 25:
        X[10:20] = X[0]                 # ties: ten copies of row 0
        X[25] = 0.0
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return pad_columns((X / np.maximum(norm, 1e-12)).astype(np.float32))


@pytest.mark.parametrize("rank", [1, 4, 16, 200])
def test_bounds_hold_for_every_pair(rank):
    E = _rows(2000, 37, seed=rank)
    Q = np.vstack([E[:5], _rows(7, 37, seed=99)])        # stored rows themselves and fresh ones
    pb = ProjectedBounds(rank=rank, sample=500).fit(E)
    lower, upper = pb.bounds(Q, len(E))
    exact = np.stack([pair_similarities(np.repeat(q[None], len(E), 0), E) for q in Q])  # (M, N)
    assert lower.shape == upper.shape == exact.shape
    assert (lower <= exact).all() and (exact <= upper).all()
    if rank == 200:  # a full basis: the bounds are as tight as the slack
        assert np.abs(upper - lower).max() < 1e-4
    lower, upper = pb.bounds(Q, 123)                     # a prefix of the stored rows
    assert lower.shape == (len(Q), 123) and (lower <= exact[:, :123]).all()


@pytest.mark.parametrize("rank", [2, 8])
def test_candidates_contain_the_exact_top_k_with_ties(rank):
    E, k = _rows(3000, 40, seed=3), 8
    Q = np.vstack([E[[0, 5, 25]], _rows(4, 40, seed=7)])
    lower, upper = ProjectedBounds(rank=rank).fit(E).bounds(Q, len(E))
    rows, cols = _candidates(lower, upper, k, offset=0)
    exact = np.stack([pair_similarities(np.repeat(q[None], len(E), 0), E) for q in Q])
    for i in range(len(Q)):
        kth = np.sort(exact[i])[-k]
        must = set(np.flatnonzero(exact[i] >= kth))     # the top k and every row tied with the k-th
        got = set(cols[rows == i])
        assert must <= got, f"query {i}: candidates miss {sorted(must - got)[:5]}"
        if rank == 8 and i != 2:                          # (query 2 is the zero row: every row ties at 0)
            assert len(got) < len(E) // 2, "the pass hardly pruned"
    assert len(cols[rows == 2]) == len(E)
    assert len(cols[rows == 0]) >= 11                     # row 0 and its ten copies all tie at 1.0


def test_fewer_allowed_rows_than_k_keeps_them_all():
    E = _rows(50, 20, seed=1)
    lower, upper = ProjectedBounds(rank=3).fit(E).bounds(E[:2], 50)
    lower[:, 4:] = upper[:, 4:] = -np.inf                # only 4 rows may be seen
    rows, cols = _candidates(lower, upper, 8, offset=10)
    assert sorted(cols[rows == 10]) == [0, 1, 2, 3] and set(rows) == {10, 11}


@pytest.mark.parametrize("rank", [2, 8, 40])
def test_one_query_candidates_hold_the_full_pass_candidates(rank):
    """``ProjectedBounds.candidates`` (block maxima, a prefilter, two passes) returns a superset of the
    full pass's candidates for one query: prefixes of the stored rows, hidden rows, ties, a zero row,
    and fewer allowed rows than k."""
    E, k = _rows(3000, 40, seed=rank), 8
    pb = ProjectedBounds(rank=rank).fit(E)
    rng = np.random.default_rng(rank)
    Q = np.vstack([E[[0, 5, 25, 2999]], _rows(4, 40, seed=11)])
    for q in Q:
        for n in (3000, 1234, 300, 5):
            hidden = np.sort(rng.choice(3000, 400, replace=False))
            for hide in (None, hidden, np.arange(n - 3)):
                lower, upper = pb.bounds(q[None], n)
                if hide is not None:
                    lower[:, hide[hide < n]] = upper[:, hide[hide < n]] = -np.inf
                _, want = _candidates(lower, upper, k, offset=0)
                got = pb.candidates(q, n, k, hide)
                assert np.all(np.diff(got) > 0) and set(want) <= set(got), (rank, n)
                allowed = np.isfinite(lower[0]).sum()
                if allowed <= k:
                    assert len(got) == allowed  # every allowed row
                elif rank == 40 and n == 3000 and hide is None and not (q == 0).all():
                    assert len(got) < 100, "the one-query pass hardly pruned"
                if hide is not None:  # the same rows hidden by an ``allowed`` mask, alone or with a list
                    mask = np.ones(3000, bool)
                    mask[hide] = False
                    products = pb.products(q, n)
                    assert np.array_equal(pb.candidates_of(products, k, allowed=mask), got)
                    assert np.array_equal(pb.candidates_of(products, k, hide[::2], allowed=mask), got)


def test_two_threads_give_the_same_candidates(monkeypatch):
    """Over many stored rows the one-query product runs on two threads, half the rows each: the same
    candidates, and the products of the halves are the rows' products."""
    import featurestore.projected_bounds as pbm

    E = _rows(3000, 40, seed=5)
    pb = ProjectedBounds(rank=8).fit(E)
    Q = np.vstack([E[[0, 7]], _rows(3, 40, seed=13)])
    one = [pb.candidates(q, 3000, 8) for q in Q]
    monkeypatch.setattr(pbm, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(pbm.os, "cpu_count", lambda: 2)
    two = [pb.candidates(q, 3000, 8) for q in Q]
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    for n in (2, 3, 2999):
        q = Q[2].astype(np.float32)[:8]
        np.testing.assert_allclose(pbm._product(pb.z_[:n], q), pb.z_[:n] @ q, rtol=1e-5, atol=1e-6)
