"""PPCL losses against brute-force loops (values and gradients), the UID gradient flow, the modules
and the hierarchical batch sampler (models/ppcl)."""

import numpy as np
import pytest
import torch

from models.ppcl import (HierarchicalBatchSampler, PPCLConfig, PPCLInputs, PPCLNet, TaskWeights,
                         hierarchical_batches, hierarchical_supcon_loss, label_positive_mask, supcon_loss,
                         total_loss, uniform_batches)
from models.ppcl.modules import CrossNetwork, UserEncoder

# ---------------------------------------------------------------- brute-force references


def brute_supcon(z, positive, tau):
    """Loops over anchor r, positive p, candidate a: the SupCon definition in models/ppcl/losses.py."""
    N = z.shape[0]

    def sim(r, a):
        return torch.dot(z[r], z[a]) / (z[r].norm() * z[a].norm()) / tau

    total, anchors = 0.0, 0
    for r in range(N):
        pos = [p for p in range(N) if p != r and positive(r, p)]
        if not pos:
            continue
        den = sum(torch.exp(sim(r, a)) for a in range(N) if a != r)
        total = total - sum(sim(r, p) - torch.log(den) for p in pos) / len(pos)
        anchors += 1
    return total / anchors


def same_label(labels, B):
    """Rows r, a (view-major over B samples) are positives: same sample, or same known label."""
    def positive(r, a):
        i, j = r % B, a % B
        return i == j or (labels[i] >= 0 and labels[i] == labels[j])
    return positive


def same_path(paths, B, level):
    def positive(r, a):
        i, j = r % B, a % B
        pi, pj = paths[i][:level + 1], paths[j][:level + 1]
        return i == j or (min(pi) >= 0 and min(pj) >= 0 and pi == pj)
    return positive


def _z(seed, n, d=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)


def _value_and_grad(fn, z):
    loss = fn(z)
    return loss.detach(), torch.autograd.grad(loss, z)[0]


def _close(got, ref):
    return torch.allclose(got[0], ref[0]) and torch.allclose(got[1], ref[1])


# ---------------------------------------------------------------- losses vs brute force

@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_supcon_matches_brute_force(tau):
    labels = [0, 1, 0, -1, 2, 1]  # an unknown label: only its own other view is a positive
    B, z = len(labels), _z(0, 2 * len(labels))
    got = _value_and_grad(lambda t: supcon_loss(t, label_positive_mask(torch.tensor(labels)), tau), z)
    ref = _value_and_grad(lambda t: brute_supcon(t, same_label(labels, B), tau), z)
    assert _close(got, ref)


def test_supcon_with_an_explicit_mask_skips_anchors_without_positives():
    z = _z(1, 6)
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[0, 3] = mask[2, 5] = mask[2, 1] = True  # asymmetric; anchors 1, 3, 4, 5 have none
    mask[4, 4] = True  # the diagonal never counts
    got = _value_and_grad(lambda t: supcon_loss(t, mask, 0.1), z)
    ref = _value_and_grad(lambda t: brute_supcon(t, lambda r, a: bool(mask[r, a]), 0.1), z)
    assert _close(got, ref)
    empty = supcon_loss(z, torch.zeros(6, 6, dtype=torch.bool))
    assert empty.item() == 0.0 and empty.requires_grad


def test_crd_matches_brute_force_per_level_weights():
    paths = [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [1, 2, -1], [-1, 3, 4]]
    B, z = len(paths), _z(2, 2 * len(paths))
    weights = (0.25, 0.5, 1.0)  # category, subcategory, concept: 2^-l with l = levels below

    def ref(t):
        return sum(w * brute_supcon(t, same_path(paths, B, level), 0.1) for level, w in enumerate(weights))

    got = _value_and_grad(lambda t: hierarchical_supcon_loss(t, torch.tensor(paths), 0.1), z)
    assert _close(got, _value_and_grad(ref, z))
    only_concept = hierarchical_supcon_loss(z, torch.tensor(paths), 0.1, (0.0, 0.0, 1.0))
    assert torch.allclose(only_concept, brute_supcon(z, same_path(paths, B, 2), 0.1))
    with pytest.raises(ValueError, match="level"):
        hierarchical_supcon_loss(z, torch.tensor(paths)[:, :2], 0.1)


def test_positive_masks_repeat_labels_over_views():
    mask = label_positive_mask(torch.tensor([3, 3, -1]), views=2)
    assert mask.shape == (6, 6)
    assert mask[0, 4] and mask[0, 1] and mask[2, 5] and not mask[2, 3] and not mask[2, 1]


def test_task_weights_and_total_loss():
    assert TaskWeights.parse(None) == TaskWeights(3.0, 1.0, 0.1)
    assert TaskWeights.parse({"crd": 3}) == TaskWeights(3.0, 0.0, 0.0)  # a dict names the tasks that are on
    assert TaskWeights.parse((0, 1, 0)).active() == ("uisd",)
    with pytest.raises(ValueError, match="unknown task"):
        TaskWeights.parse({"crd": 1, "rnc": 1})
    with pytest.raises(ValueError):
        TaskWeights.parse((1, 2))
    with pytest.raises(ValueError):
        TaskWeights(crd=-1)
    mse, terms = torch.tensor(2.0), {"crd": torch.tensor(1.0), "uisd": torch.tensor(4.0), "uid": torch.tensor(10.0)}
    expected = 0.9 * 2.0 + 0.1 * (3 * 1.0 + 1 * 4.0 + 0.1 * 10.0)
    assert total_loss(mse, terms, TaskWeights(), 0.1).item() == pytest.approx(expected)
    assert total_loss(mse, terms, TaskWeights(0, 0, 0), 0.1).item() == pytest.approx(0.9 * 2.0)


# ---------------------------------------------------------------- modules and the UID gradient flow

CFG = PPCLConfig(text_dim=12, image_dim=5, user_numeric_dim=3, user_cardinalities=(4, 3, 6), hidden=16,
                 cat_dim=4, proj_dim=8, dropout=0.1)


def _inputs(B=10, cfg=CFG, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([torch.randint(0, n, (B,), generator=g) for n in cfg.user_cardinalities], dim=1)
    return PPCLInputs(torch.randn(B, cfg.text_dim, generator=g), torch.randn(B, cfg.image_dim, generator=g),
                      torch.rand(B, cfg.user_numeric_dim, generator=g), codes)


def test_net_shapes_and_dropout_views():
    torch.manual_seed(0)
    net = PPCLNet(CFG)
    x = _inputs()
    a, b = net(x), net(x)
    assert a.post.shape == a.user.shape == a.hidden.shape == (10, 16) and a.pred.shape == (10,)
    assert not torch.equal(a.pred, b.pred)  # train mode: two dropout views differ
    net.eval()
    assert torch.equal(net(x).pred, net(x).pred)
    assert net.post.text.down.out_features == 3 and net.post.image.down.out_features == 2  # ceil(width / 4)
    # the user MLP sees 3 * 3 crossed numerics, 3 embeddings and 3 pairwise products of width 4
    assert net.user.mlp[0].in_features == 9 + 3 * 4 + 3 * 4


def test_cross_layers_and_pairwise_products_by_hand():
    cross = CrossNetwork(3, 2)
    x0 = torch.rand(4, 3)
    x = x0
    for layer in cross.layers:
        x = x0 * (x @ layer.weight.T + layer.bias) + x
    assert torch.allclose(cross(x0), x)
    enc = UserEncoder(PPCLConfig(text_dim=1, user_cardinalities=(3, 3, 3), cat_dim=2, hidden=4))
    assert enc.pairs.T.tolist() == [[0, 1], [0, 2], [1, 2]]


def test_uid_gradient_reaches_only_the_predictor():
    torch.manual_seed(0)
    net = PPCLNet(CFG)
    x = _inputs()
    a, b = net(x), net(x)
    h = torch.cat([net.uid_hidden(a.post, a.user), net.uid_hidden(b.post, b.user)])
    users = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, -1])
    supcon_loss(net.heads["uid"](h), label_positive_mask(users)).backward()
    for module in (net.post, net.user, net.heads["crd"], net.heads["uisd"], net.predictor.out):
        for p in module.parameters():
            assert p.grad is None or not p.grad.any()
    assert all(p.grad is not None and p.grad.any() for p in net.heads["uid"].parameters())
    assert net.predictor.body[0].weight.grad.abs().sum() > 0


def test_crd_and_uisd_gradients_reach_their_encoders():
    torch.manual_seed(0)
    net = PPCLNet(CFG)
    a, b = net(_inputs()), net(_inputs())
    paths = torch.tensor([[0, 0, 0], [0, 0, 1]] * 5)
    hierarchical_supcon_loss(net.heads["crd"](torch.cat([a.post, b.post])), paths).backward()
    assert net.post.fuse[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.user.parameters())  # CRD does not touch the user encoder


def test_config_checks():
    with pytest.raises(ValueError, match="text or image"):
        PPCLConfig(user_numeric_dim=3)
    with pytest.raises(ValueError):
        PPCLConfig(text_dim=3, dropout=1.0)
    assert not PPCLConfig(text_dim=3).has_user


# ---------------------------------------------------------------- the hierarchical batch sampler

def _tree_paths(n=4000, seed=0):
    """A 3-level tree like SMPD's, scaled down: 11 categories, 7 subcategories each, ~9 concepts each."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(0, 11, n)
    sub = cat * 7 + rng.integers(0, 7, n)
    con = sub * 9 + rng.integers(0, 9, n)
    paths = np.column_stack([cat, sub, con])
    paths[rng.random(n) < 0.01, 2] = -1  # a few unknown concepts
    return paths


def _share_rate(paths, batches, level):
    """Fraction of rows with another row of the same known path[: level + 1] in their batch."""
    hit = 0
    for b in batches:
        key = paths[b][:, :level + 1]
        _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        hit += ((cnt[inv.reshape(-1)] > 1) & (key >= 0).all(axis=1)).sum()
    return hit / len(paths)


def test_hierarchical_batches_give_positives_at_every_level():
    paths = _tree_paths()
    hier = hierarchical_batches(paths, 128, np.random.default_rng(0))
    unif = uniform_batches(len(paths), 128, np.random.default_rng(0))
    assert _share_rate(paths, unif, 2) < 0.25  # ~700 concepts: a uniform batch of 128 rarely repeats one
    for level in range(3):
        assert _share_rate(paths, hier, level) > 0.95
    assert np.mean([len(np.unique(paths[b][:, 0])) for b in hier]) > 4  # several categories: negatives too


def test_sampler_epoch_semantics_and_determinism():
    paths = _tree_paths(1003)
    s = HierarchicalBatchSampler(paths, 100, seed=7)
    epoch0 = [list(b) for b in s]
    assert len(s) == len(epoch0) == 11 and [len(b) for b in epoch0] == [100] * 10 + [3]
    assert sorted(i for b in epoch0 for i in b) == list(range(1003))  # every row exactly once
    assert [list(b) for b in HierarchicalBatchSampler(paths, 100, seed=7)] == epoch0  # same seed, same epoch
    s.set_epoch(1)
    epoch1 = [list(b) for b in s]
    assert epoch1 != epoch0 and sorted(i for b in epoch1 for i in b) == list(range(1003))
    assert [list(b) for b in HierarchicalBatchSampler(paths, 100, seed=8)] != epoch0


def test_sampler_pieces_keep_concept_mates_together():
    paths = np.array([[0, 0, 0]] * 5 + [[0, 0, 1]] * 2 + [[1, 1, 2]])  # runs of 5, 2, 1
    for seed in range(5):
        (batch,) = hierarchical_batches(paths, 8, np.random.default_rng(seed), posts_per_concept=4,
                                        pieces_per_segment=1)
        con = paths[batch, 2].tolist()
        # with one piece per segment each piece is contiguous; the run of 5 stays one piece (4 + a lone row)
        runs = [con[0]] + [c for p, c in zip(con, con[1:]) if c != p]
        assert sorted(runs) == [0, 1, 2]
    with pytest.raises(ValueError, match="paths"):
        HierarchicalBatchSampler(paths[:, :2], 4)
