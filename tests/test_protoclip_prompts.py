"""CoOp prompts (global + local context) on a tiny random-weight open_clip model, alone and in the head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.protoclip import ProtoClipRegressor
from models.protoclip.prompts import PromptConfig, PromptLearner

TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8,
                                             "head_width": 32},
             "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
NAMES = ("beach", "dogs_and_cats", "city night", "food")


@pytest.fixture(scope="module")
def clip():
    from open_clip.model import CLIP

    torch.manual_seed(0)
    return CLIP(**TINY_CLIP).eval()


def test_shape_and_gradients_reach_only_the_context(clip):
    learner = PromptLearner(clip, NAMES, PromptConfig(n_ctx_global=2, n_ctx_local=3))
    out = learner()
    assert out.shape == (len(NAMES), TINY_CLIP["embed_dim"])
    out.pow(2).sum().backward()
    trainable = {n for n, p in learner.named_parameters() if p.requires_grad}
    assert trainable == {"ctx_global", "ctx_local"}
    assert learner.ctx_global.grad.abs().sum() > 0 and learner.ctx_local.grad.abs().sum() > 0
    assert learner.ctx_local.shape == (len(NAMES), 3, 64) and learner.ctx_global.shape == (2, 64)
    assert all(p.grad is None for n, p in learner.named_parameters() if n not in trainable)
    assert all(p.requires_grad for p in clip.parameters())  # the model passed in is untouched (a copy is frozen)


def test_deterministic_and_local_context_is_per_class(clip):
    a, b = PromptLearner(clip, NAMES), PromptLearner(clip, NAMES)
    with torch.no_grad():
        fa, fb = a(), b()
        assert torch.equal(fa, fb)
        a.ctx_local[1] += 0.5  # class 1's own context moves only class 1
        fc = a()
    changed = (fc - fa).abs().amax(dim=1) > 1e-6
    assert changed.tolist() == [False, True, False, False]


def test_placeholder_context_reproduces_encode_text(clip):
    """With the context set to the embeddings of the 'X' placeholders the tower is CLIP's encode_text."""
    learner = PromptLearner(clip, NAMES, PromptConfig(n_ctx_global=2, n_ctx_local=2))
    with torch.no_grad():
        x = clip.token_embedding(learner.ids[:, 1:5])  # (C, 4, W)
        learner.ctx_global.copy_(x[0, :2])
        learner.ctx_local.copy_(x[:, 2:])
        torch.testing.assert_close(learner(), clip.encode_text(learner.ids), rtol=1e-5, atol=1e-5)


def test_config_errors():
    with pytest.raises(ValueError, match="at least one context"):
        PromptConfig(n_ctx_global=0, n_ctx_local=0)


def test_head_with_prompts_trains_the_context(clip):
    rng = np.random.default_rng(0)
    n = 240
    code = rng.integers(0, len(NAMES), n)
    X = np.column_stack([rng.normal(size=(n, 6)) + code[:, None], rng.normal(size=(n, 5)), code])
    y = X[:, 0] + rng.normal(scale=0.1, size=n)
    kw = dict(image_columns=tuple(range(6)), text_columns=tuple(range(6, 11)), class_column=11, dim=16, heads=2,
              penultimate=8, batch_size=64, max_epochs=3, text_tower=clip, class_names=NAMES, n_ctx_global=2,
              n_ctx_local=1)
    est = ProtoClipRegressor(**kw).fit(X, y)
    start = PromptLearner(clip, NAMES, PromptConfig(2, 1, seed=est.seed))
    assert not torch.equal(est.net_.prompts.ctx_local, start.ctx_local)  # the context was trained
    assert torch.equal(est.net_.prompts.tower.token_embedding.weight, clip.token_embedding.weight)  # tower frozen
    assert est.n_classes_ == len(NAMES) and est.transform(X).shape == (n, 8)
    np.testing.assert_array_equal(est.predict(X), ProtoClipRegressor(**kw).fit(X, y).predict(X))
    with pytest.raises(ValueError, match="class_names"):
        ProtoClipRegressor(**{**kw, "class_names": NAMES[:2]}).fit(X, y)
