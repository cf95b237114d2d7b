"""``ProtoClipRegressor`` against scikit-learn's estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from models.protoclip import ProtoClipRegressor

# A small, fast configuration: the checks fit dozens of times on ~10-200 rows. With no column
# layout every column is one "image" modality and there is no class proxy (random check data
# has no class column); the class-proxy path is covered by tests/test_protoclip.py.
SMALL = dict(dim=16, heads=2, penultimate=8, batch_size=32, max_epochs=30, lr=1e-2, dropout=0.0)

# check name -> reason; empty: every applicable check passes.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([ProtoClipRegressor(**SMALL)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_conformance(estimator, check):
    check(estimator)
