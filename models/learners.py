"""Registry of base learners for the stack: name -> estimator class, built from params."""

from __future__ import annotations

from models.gbdt import CatBoostRegressor, LightGBMRegressor, XGBoostRegressor
from models.heads import MLPRegressorHead

LEARNERS = {
    "lgbm": LightGBMRegressor,
    "catboost": CatBoostRegressor,
    "xgboost": XGBoostRegressor,
    "mlp": MLPRegressorHead,
}
_CATEGORICAL_AWARE = {"lgbm", "catboost", "xgboost"}


def list_learners() -> list[str]:
    return sorted(LEARNERS)


def create_learner(name: str, params: dict | None = None, categorical: tuple[int, ...] = ()):
    """A fresh, unfitted learner. ``params`` are its keyword arguments (unknown ones raise TypeError)."""
    try:
        cls = LEARNERS[name]
    except KeyError:
        raise KeyError(f"unknown learner {name!r}; known: {list_learners()}") from None
    kw = dict(params or {})
    if name in _CATEGORICAL_AWARE:
        kw.setdefault("categorical_features", tuple(categorical))
    return cls(**kw)
