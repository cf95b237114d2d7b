"""Diverse class prototypes: farthest-point selection, member cap, small classes, train rows only."""

from __future__ import annotations

import numpy as np
import pytest

from models.protoclip.prototypes import MAX_MEMBERS, class_prototypes, farthest_point_order, modality_prototypes


def test_farthest_point_on_a_hand_made_example():
    # Points at 0, 10, 20, 100, 180 and 270 degrees (lengths differ: only directions count).
    angles = np.deg2rad([0, 10, 20, 100, 180, 270])
    pts = np.column_stack([np.cos(angles), np.sin(angles)]) * np.array([[3.0], [1], [2], [5], [1], [0.5]])
    seed = next(s for s in range(100) if farthest_point_order(pts, 1, seed=s)[0] == 0)
    # from 0 deg: 180 is farthest; then 270 (90 deg from both) beats 100 (80 deg from 180); then 100
    np.testing.assert_array_equal(farthest_point_order(pts, 4, seed=seed), [0, 4, 5, 3])
    np.testing.assert_array_equal(farthest_point_order(pts, 4, seed=seed), [0, 4, 5, 3])  # deterministic
    assert sorted(farthest_point_order(pts, 10, seed=seed)) == list(range(6))  # k > n: every row once


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_every_pick_maximises_the_distance_to_earlier_picks(seed):
    pts = np.random.default_rng(seed).normal(size=(50, 4))
    order = farthest_point_order(pts, 12, seed=seed)
    z = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    for j in range(1, 12):
        d = np.linalg.norm(z[:, None] - z[order[:j]][None], axis=2).min(axis=1)
        assert d[order[j]] == pytest.approx(d.max())


def _data(n=2000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 4, n).astype(float)
    classes[:700] = 0  # class 0 has more than 256 rows
    classes[rng.random(n) < 0.05] = np.nan
    classes[5] = -1
    emb = rng.normal(size=(n, d))
    return emb, classes


def test_member_cap_normalised_vectors_and_counts():
    emb, classes = _data()
    emb[np.nan_to_num(classes, nan=-1) == 2] += 3.0  # class 2 is off-centre
    p = class_prototypes(emb, classes, n_classes=6, max_members=MAX_MEMBERS)
    assert p.vectors.shape == (6, 8) and p.vectors.dtype == np.float32
    assert all(len(m) <= MAX_MEMBERS for m in p.members) and len(p.members[0]) == MAX_MEMBERS
    for c in range(4):
        assert np.all(classes[p.members[c]] == c) and len(set(p.members[c])) == len(p.members[c])
        assert np.linalg.norm(p.vectors[c]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(p.present, [True, True, True, True, False, False])
    np.testing.assert_array_equal(p.vectors[4:], 0.0)  # classes without rows: zero prototypes
    assert p.counts[0] == np.sum(classes == 0) > MAX_MEMBERS
    z = emb[p.members[2]] / np.linalg.norm(emb[p.members[2]], axis=1, keepdims=True)
    ref = z.mean(axis=0)
    np.testing.assert_allclose(p.vectors[2], ref / np.linalg.norm(ref), atol=1e-6)


def test_classes_with_few_samples_keep_all_rows():
    emb = np.eye(5)
    classes = np.array([0, 1, 1, np.nan, 3.0])
    p = class_prototypes(emb, classes, n_classes=4, max_members=256, seed=3)
    assert [sorted(m) for m in p.members] == [[0], [1, 2], [], [4]]
    np.testing.assert_allclose(p.vectors[1], [0, 2 ** -0.5, 2 ** -0.5, 0, 0], atol=1e-7)
    np.testing.assert_array_equal(p.counts, [1, 2, 0, 1])


def test_only_train_rows_are_read():
    emb, classes = _data()
    train = np.random.default_rng(1).random(len(emb)) < 0.7
    a = modality_prototypes({"image": emb, "text": emb[:, :3]}, classes, n_classes=4, rows=train, seed=2)
    emb2, classes2 = emb.copy(), classes.copy()
    emb2[~train] = np.random.default_rng(9).normal(size=((~train).sum(), 8)) * 100
    classes2[~train] = 0
    b = modality_prototypes({"image": emb2, "text": emb2[:, :3]}, classes2, n_classes=4, rows=train, seed=2)
    for name in a:
        assert a[name].vectors.tobytes() == b[name].vectors.tobytes()
        for ma, mb in zip(a[name].members, b[name].members):
            np.testing.assert_array_equal(ma, mb)
            assert train[ma].all()


def test_deterministic_under_a_seed():
    emb, classes = _data()
    a = class_prototypes(emb, classes, n_classes=4, seed=0)
    b = class_prototypes(emb, classes, n_classes=4, seed=0)
    c = class_prototypes(emb, classes, n_classes=4, seed=11)
    assert a.vectors.tobytes() == b.vectors.tobytes()
    assert not np.array_equal(a.members[0], c.members[0])  # a capped class: the subset depends on the seed
