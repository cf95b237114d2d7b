import pytest

from featurestore.config import config_from_dict, merge_params
from featurestore.ingest import IngestConfig
from featurestore.split import SplitConfig
from models.train_gbdt import TrainConfig


def test_unknown_key_is_an_error():
    with pytest.raises(ValueError, match=r"train_lgbm.*num_leafs"):
        config_from_dict(TrainConfig, "train_lgbm", {"num_leafs": 31})


def test_lists_become_tuples_and_values_apply():
    cfg = config_from_dict(SplitConfig, "split", {"fractions": [0.7, 0.2, 0.1]})
    assert cfg.fractions == (0.7, 0.2, 0.1)
    assert config_from_dict(TrainConfig, "t", {"feature_groups": ["a", "b"]}).feature_groups == ("a", "b")


def test_bad_policy():
    with pytest.raises(ValueError, match="on_bad_row"):
        config_from_dict(IngestConfig, "ingest", {"on_bad_row": "skip"})


def test_merge_params_is_recursive():
    base = {"split": {"fractions": [0.8, 0.1, 0.1]}, "train_lgbm": {"seed": 1, "num_leaves": 7}}
    out = merge_params(base, {"train_lgbm": {"seed": 2}})
    assert out == {"split": {"fractions": [0.8, 0.1, 0.1]}, "train_lgbm": {"seed": 2, "num_leaves": 7}}
    assert base["train_lgbm"]["seed"] == 1


def test_params_yaml_sections_all_parse():
    """Every section of the committed params.yaml is accepted by its stage's config."""
    from pathlib import Path

    from featurestore.config import load_params
    from models.evaluation import EvaluateConfig
    from models.submission import SubmissionConfig

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    for cls, name in [(IngestConfig, "ingest"), (SplitConfig, "split"), (TrainConfig, "train_lgbm"),
                      (EvaluateConfig, "evaluate"), (SubmissionConfig, "submission")]:
        config_from_dict(cls, name, params[name])
