"""PPCLRegressor against scikit-learn's estimator checks.

The checks pass X of arbitrary width and no column roles, so the estimator runs with its default
layout: every column is a text-embedding column, no category / user columns, hence only the
regression loss (the contrastive tasks are tested in test_ppcl.py and test_ppcl_estimator.py).
No check is marked as an expected failure. PPCLRegressor is also a transformer (``transform``:
the predictor's penultimate features, float32 whatever the input dtype), so the transformer
checks run too.
"""

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.ppcl import PPCLRegressor

SMALL = dict(hidden=16, proj_dim=8, batch_size=32, max_epochs=15, patience=3, lr=1e-2)


@parametrize_with_checks([PPCLRegressor(**SMALL)])
def test_sklearn_conformance(estimator, check):
    check(estimator)


def test_estimator_declares_transformer_tags():
    tags = PPCLRegressor().__sklearn_tags__()
    assert tags.transformer_tags is not None and tags.transformer_tags.preserves_dtype == []
    assert tags.estimator_type == "regressor"
    X = np.random.default_rng(0).normal(size=(64, 6))
    y = X[:, 0] + 0.1 * np.random.default_rng(1).normal(size=64)
    Z = PPCLRegressor(**{**SMALL, "max_epochs": 2}).fit_transform(X, y)
    assert Z.shape == (64, SMALL["hidden"]) and Z.dtype == np.float32
