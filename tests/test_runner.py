"""pipelines.runner: which stages run, and dvc.yaml's model stages depending on exactly what they read."""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_stages import optional_stages, root_stages

from featurestore.config import load_params, merge_params
from featurestore.table_specs import get_table
from models.train_gbdt import TrainConfig
from models.train_stack import StackConfig
from pipelines.runner import OPTIONAL_STAGES, STAGES, model_tables, select_stages

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")


def _table_deps(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if d.startswith("data/") and d not in ("data/split.parquet",
                                                                             "data/tables/labels.parquet")}


@pytest.mark.parametrize("stage, tables", [
    ("train_lgbm", lambda p: TrainConfig(**{**p["train_lgbm"], "feature_groups": tuple(p["train_lgbm"]["feature_groups"])
                                            }).feature_groups),
    ("train_stack", lambda p: StackConfig(**{**p["train_stack"], "feature_groups": tuple(p["train_stack"]["feature_groups"])
                                             }).all_groups),
])
def test_model_stages_depend_on_exactly_the_tables_they_read(stage, tables):
    dvc = root_stages()
    assert _table_deps(dvc[stage]) == {get_table(t).path for t in tables(PARAMS)}


def test_default_run_skips_the_optional_stages_no_model_reads():
    chosen = select_stages(PARAMS)
    assert not set(OPTIONAL_STAGES) & set(chosen)  # no default learner reads MiniLM, CLIP or the fine-tuned heads
    assert [s for s in STAGES if s not in OPTIONAL_STAGES] == list(chosen)
    with_ppcl = merge_params(PARAMS, {"train_stack": {"learners": [*PARAMS["train_stack"]["learners"], "ppcl"]}})
    chosen = select_stages(with_ppcl)
    assert "embed_minilm" in chosen and chosen.index("embed_minilm") < chosen.index("train_stack")  # PPCL reads it
    assert "finetune_wrcr" not in chosen and "embed_clip" not in chosen


def test_a_model_reading_an_optional_table_brings_its_stage_and_the_stage_inputs():
    groups = list(PARAMS["train_lgbm"]["feature_groups"]) + ["features_finetuned_wrcr"]
    params = merge_params(PARAMS, {"train_lgbm": {"feature_groups": groups}})
    params["train_stack"] = {k: v for k, v in params["train_stack"].items() if k != "learner_feature_groups"}
    params["train_stack"]["learner_feature_groups"] = {}
    assert "features_finetuned_wrcr" in model_tables(params) and "embed_minilm" not in model_tables(params)
    chosen = select_stages(params)
    assert "finetune_wrcr" in chosen and "embed_minilm" in chosen  # finetune_wrcr reads the MiniLM table
    assert chosen.index("embed_minilm") < chosen.index("finetune_wrcr") < chosen.index("train_stack")


def test_optional_stages_live_outside_the_root_dvc_yaml_unless_a_default_model_reads_them():
    """`dvc repro` runs the root dvc.yaml; an optional stage is there only when a default model reads it."""
    root, optional = root_stages(), optional_stages()
    chosen = select_stages(PARAMS)
    for s in OPTIONAL_STAGES:
        assert (s in root) == (s in chosen) and (s in optional) == (s not in chosen), s
