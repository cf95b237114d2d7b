"""Registry of base learners for the stack: name -> estimator class, built from params."""

from __future__ import annotations

from models.gbdt import CatBoostRegressor, LightGBMRegressor, XGBoostRegressor
from models.heads import MLPRegressorHead
from models.sequence_head import SequenceHeadRegressor

LEARNERS = {
    "lgbm": LightGBMRegressor,
    "catboost": CatBoostRegressor,
    "xgboost": XGBoostRegressor,
    "mlp": MLPRegressorHead,
    "sequence": SequenceHeadRegressor,
}
_CATEGORICAL_AWARE = {"lgbm", "catboost", "xgboost"}


def list_learners() -> list[str]:
    return sorted(LEARNERS)


def create_learner(name: str, params: dict | None = None, categorical: tuple[int, ...] = (),
                   feature_names: tuple[str, ...] | None = None):
    """A fresh, unfitted learner. ``params`` are its keyword arguments (unknown ones raise TypeError).

    Learners that read a column layout (``from_feature_names``: the sequence head) need ``feature_names``.
    """
    try:
        cls = LEARNERS[name]
    except KeyError:
        raise KeyError(f"unknown learner {name!r}; known: {list_learners()}") from None
    kw = dict(params or {})
    if name in _CATEGORICAL_AWARE:
        kw.setdefault("categorical_features", tuple(categorical))
    if hasattr(cls, "from_feature_names"):
        if feature_names is None:
            raise ValueError(f"learner {name!r} needs the feature names to find its columns")
        return cls.from_feature_names(list(feature_names), **kw)
    return cls(**kw)
