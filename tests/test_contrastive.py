"""RNC / WRCR losses against a brute-force reference (values and gradients), the heads, the
ContrastiveRegressor estimator, the fine-tuned feature-group builder and the finetune_wrcr stage."""

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.base import clone
from test_encoders import make_root

from featurestore.embeddings import embedding_table
from models.contrastive import ContrastiveRegressionNet, HeadConfig, rnc_loss, wrcr_loss
from models.contrastive.losses import ranked_contrastive_loss
from models.finetune import ContrastiveRegressor, FinetuneConfig, finetuned_embeddings
from pipelines import finetune_wrcr


# ---------------------------------------------------------------- losses vs brute force

def brute_force(z, y, tau=2.0, alpha=0.0, weighting="linear", similarity="l2"):
    """Loops over anchor i, positive j, candidate k: the definitions in models/contrastive/losses.py."""
    def sim(a, b):
        if similarity == "l2":
            return -torch.sqrt(((z[a] - z[b]) ** 2).sum() + 1e-12) / tau
        return torch.dot(z[a], z[b]) / (z[a].norm() * z[b].norm()) / tau

    g = {"log": math.log1p, "linear": lambda d: d, "quadratic": lambda d: d * d}[weighting]
    B, total = len(y), 0.0
    for i in range(B):
        for j in range(B):
            if i == j:
                continue
            d_ij = abs(float(y[i]) - float(y[j]))
            den = sum((1 + alpha) ** g(abs(float(y[i]) - float(y[k])) - d_ij) * torch.exp(sim(i, k))
                      for k in range(B) if k != i and abs(float(y[i]) - float(y[k])) >= d_ij)
            total = total - (sim(i, j) - torch.log(den))
    return total / (B * (B - 1))


def _case(seed=0, B=7, D=5):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, D, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 2.0, 2.0, 4.5, 0.0, 3.0, 2.0], dtype=torch.float64)[:B]  # ties included
    return z, y


def _value_and_grad(fn, z):
    loss = fn(z)
    return loss.detach(), torch.autograd.grad(loss, z)[0]


@pytest.mark.parametrize("similarity", ["l2", "cosine"])
def test_rnc_matches_brute_force(similarity):
    z, y = _case(1)
    got = _value_and_grad(lambda t: rnc_loss(t, y, similarity=similarity), z)
    ref = _value_and_grad(lambda t: brute_force(t, y, similarity=similarity), z)
    assert torch.allclose(got[0], ref[0]) and torch.allclose(got[1], ref[1])


@pytest.mark.parametrize("weighting", ["log", "linear", "quadratic"])
@pytest.mark.parametrize("similarity", ["l2", "cosine"])
def test_wrcr_matches_brute_force(weighting, similarity):
    z, y = _case(2)
    got = _value_and_grad(lambda t: wrcr_loss(t, y, alpha=0.4, weighting=weighting, similarity=similarity,
                                              temperature=0.7), z)
    ref = _value_and_grad(lambda t: brute_force(t, y, 0.7, 0.4, weighting, similarity), z)
    assert torch.allclose(got[0], ref[0]) and torch.allclose(got[1], ref[1])


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_sorted_and_dense_paths_agree(alpha):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(48, 6, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (48,), generator=g).double()  # many ties
    a = _value_and_grad(lambda t: ranked_contrastive_loss(t, y, alpha=alpha, method="sorted"), z)
    b = _value_and_grad(lambda t: ranked_contrastive_loss(t, y, alpha=alpha, method="dense", chunk=5), z)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_alpha_zero_is_rnc_and_weights_push_far_negatives():
    z, y = _case(4)
    for w in ("log", "linear", "quadratic"):
        assert torch.allclose(wrcr_loss(z, y, alpha=0.0, weighting=w), rnc_loss(z, y))
    assert wrcr_loss(z, y, alpha=0.4) > rnc_loss(z, y)  # every weight >= 1: a larger denominator


def test_large_label_distances_stay_finite():
    z = torch.randn(32, 4, requires_grad=True)
    y = torch.linspace(0, 60, 32)  # quadratic weights up to 1.4 ** 3600
    loss = wrcr_loss(z, y, weighting="quadratic")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_loss_argument_errors():
    z, y = _case(5)
    with pytest.raises(ValueError, match="weighting"):
        wrcr_loss(z, y, weighting="cubic")
    with pytest.raises(ValueError, match="at least 2"):
        rnc_loss(z[:1], y[:1])
    with pytest.raises(ValueError, match="sorted"):
        wrcr_loss(z, y, weighting="log", method="sorted")


# ---------------------------------------------------------------- heads and the estimator

def test_head_shapes_and_config_checks():
    net = ContrastiveRegressionNet(HeadConfig(in_dims=(384, 29)))
    z, pred = net([torch.randn(5, 384), torch.randn(5, 29)])
    assert z.shape == (5, 64) and pred.shape == (5,)
    assert net.projections[0].net[0].out_features == 1536 and net.fuse[0].in_features == 256
    with pytest.raises(ValueError):
        HeadConfig(in_dims=())
    with pytest.raises(ValueError, match="modality blocks"):
        net([torch.randn(5, 384)])


def _synthetic(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12))
    y = 5 + 2 * X[:, 0] - X[:, 7] + 0.3 * rng.normal(size=n)
    X[rng.random((n, 12)) < 0.02] = np.nan  # missing values are imputed
    return X, y


SMALL = dict(blocks=(8, 4), proj_hidden=32, proj_dim=16, embed_dim=8, batch_size=64, max_epochs=12, patience=3,
             lr=3e-3, threads=1)


@pytest.mark.parametrize("loss", ["l1", "rnc", "wrcr"])
def test_estimator_learns_and_is_deterministic(loss):
    X, y = _synthetic()
    tr, va = slice(0, 450), slice(450, 600)
    a = ContrastiveRegressor(loss=loss, **SMALL).fit(X[tr], y[tr], X[va], y[va])
    b = clone(a).fit(X[tr], y[tr], X[va], y[va])
    assert np.array_equal(a.transform(X), b.transform(X)) and np.array_equal(a.predict(X), b.predict(X))
    assert a.transform(X).shape == (600, 8) and a.transform(X).dtype == np.float32
    mae = np.abs(a.predict(X[va]) - y[va]).mean()
    assert mae < 0.6 * np.abs(y[va] - y[tr].mean()).mean()  # clearly better than the train mean
    val = [h["val_mae"] for h in a.history_]
    assert a.best_epoch_ == 1 + int(np.argmin(val)) and len(val) <= a.best_epoch_ + SMALL["patience"]


def test_estimator_rejects_bad_blocks_and_loss():
    X, y = _synthetic(100)
    with pytest.raises(ValueError, match="blocks"):
        ContrastiveRegressor(blocks=(5, 5)).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        ContrastiveRegressor(loss="mse").fit(X, y)


# ---------------------------------------------------------------- the feature-group builder and the stage

TINY_FT = dict(proj_hidden=16, proj_dim=8, embed_dim=6, batch_size=16, max_epochs=3, patience=2, threads=1)


@pytest.fixture
def ft_root(tmp_path):
    paths = make_root(tmp_path, n=80)
    split = pq.read_table(paths.table("split"))
    emb = np.random.default_rng(0).normal(size=(80, 10)).astype(np.float32)
    out = paths.table("embed_minilm")
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(embedding_table(split["pid"].to_numpy(), split["postdate"].to_numpy(), emb), out)
    return paths


def test_builder_writes_every_post_and_ignores_val_test_labels(ft_root):
    cfg = FinetuneConfig(**TINY_FT)
    table = finetuned_embeddings(ft_root, cfg)
    assert table.column_names == ["pid", "postdate", *[f"ft_{i}" for i in range(6)]]
    assert table.num_rows == 80 and table["pid"].to_pylist() == sorted(table["pid"].to_pylist())
    assert table.equals(finetuned_embeddings(ft_root, cfg))  # seeded: same table
    labels = pq.read_table(ft_root.table("labels"))
    split = pq.read_table(ft_root.table("split"))["split"].to_numpy(zero_copy_only=False)
    lab = labels["label"].to_numpy().copy()
    lab[split != "train"] = 17.0 - lab[split != "train"]
    pq.write_table(labels.set_column(1, "label", [lab]), ft_root.table("labels"))
    assert finetuned_embeddings(ft_root, cfg).equals(table)  # train_tail early stopping: no val/test label


def test_builder_train_rows_ignore_non_train_inputs(ft_root):
    cfg = FinetuneConfig(**TINY_FT, crossfit_folds=2)
    before = finetuned_embeddings(ft_root, cfg).to_pandas()
    path = ft_root.table("embed_minilm")
    t = pq.read_table(path)
    train = pq.read_table(ft_root.table("split"))["split"].to_numpy(zero_copy_only=False) == "train"
    emb = np.asarray(t["embedding"].to_pylist(), np.float32)
    emb[~train] = 3.0  # every non-train post gets another text embedding
    pq.write_table(embedding_table(t["pid"].to_numpy(), t["postdate"].to_numpy(), emb), path)
    after = finetuned_embeddings(ft_root, cfg).to_pandas()
    assert after[train].equals(before[train]) and not after[~train].equals(before[~train])


def test_builder_crossfit_changes_train_rows_only(ft_root):
    plain = finetuned_embeddings(ft_root, FinetuneConfig(**TINY_FT, include_prediction=True))
    oof = finetuned_embeddings(ft_root, FinetuneConfig(**TINY_FT, include_prediction=True, crossfit_folds=2))
    train = pq.read_table(ft_root.table("split"))["split"].to_numpy(zero_copy_only=False) == "train"
    a, b = plain.to_pandas(), oof.to_pandas()
    assert a[~train].equals(b[~train]) and not a[train].equals(b[train])
    assert np.isfinite(b.drop(columns=["pid", "postdate"]).to_numpy()).all()


def test_stage_writes_table_model_and_report(ft_root):
    params = {"finetune_wrcr": {**TINY_FT, "tabular": ["features_image_stats"]}}
    info = finetune_wrcr.run(ft_root, params)
    table = pq.read_table(ft_root.table("features_finetuned_wrcr"))
    assert table.num_rows == 80 and info["blocks"] == [10, 29, 29]  # minilm, image_stats encoder, image_stats table
    report = json.loads((ft_root.reports / "finetune_wrcr.json").read_text())
    assert set(report["head_metrics"]) == {"train", "val", "test"}
    assert (ft_root.root / finetune_wrcr.MODEL).is_file()
    with pytest.raises(ValueError, match="unknown key"):
        finetune_wrcr.run(ft_root, {"finetune_wrcr": {"lerning_rate": 1}})
