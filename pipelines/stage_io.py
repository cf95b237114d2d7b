"""What each stage reads and writes, as paths relative to the work root: ``dvc.yaml``'s data
deps and outs, declared here because ``smpp run`` also runs where no ``dvc.yaml`` is (an
installed wheel). A test checks the two agree.

``data/raw/smpd`` stands for the run's SMPD directory and ``data/raw/smpd.oracle.parquet`` for
the oracle file beside it, wherever ``Paths`` puts them. ``PERSIST`` outputs are resumable
caches (DVC ``persist: true``): never removed before a stage reruns, never hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.paths import Paths
from featurestore.config import config_from_dict
from featurestore.table_specs import get_table, list_tables

SMPD = "data/raw/smpd"
ORACLE = "data/raw/smpd.oracle.parquet"
_TABLES, _SPLIT, _LABELS, _POSTS = "data/tables", "data/split.parquet", "data/tables/labels.parquet", \
    "data/tables/posts.parquet"



def _fitted(*names: str) -> tuple[str, ...]:
    """The Parquet files of fitted SQL relations (vocabularies, running statistics) under data/fitted."""
    return tuple(f"data/fitted/{n}.parquet" for n in names)


# stage -> (inputs, outputs); train_lgbm and train_stack read the tables their params name.
_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ingest": ((SMPD,), (_TABLES, "reports/ingest_report.json")),
    "split": ((_POSTS,), (_SPLIT,)),
    "features_baseline": ((_TABLES, _SPLIT), ("data/features/baseline.parquet", *_fitted("vocab_category",
                                                                                  "vocab_subcategory", "vocab_concept"))),
    "features_user": ((_TABLES,), ("data/features/user.parquet",)),
    "features_crawled": ((_TABLES,), ("data/features/crawled.parquet",)),
    "features_ids": ((_TABLES, _SPLIT), ("data/features/ids.parquet", *_fitted("vocab_user"))),
    "features_temporal": ((_TABLES,), ("data/features/temporal.parquet",)),
    "features_text": ((_TABLES, _SPLIT), ("data/features/text.parquet", "data/fitted/text_model.joblib")),
    "features_image_stats": ((SMPD, _POSTS, "data/tables/images.parquet"),
                             ("data/features/image_stats.parquet", "reports/features_image_stats.json")),
    "embed_engineered": ((_SPLIT, "data/tables/categories.parquet", "data/features/text.parquet",
                          "data/features/image_stats.parquet"), ("data/embeddings/engineered.parquet",
                                                                  "data/fitted/engineered_encoder.joblib")),
    "features_history": ((_TABLES, _SPLIT), ("data/features/history.parquet", *_fitted("history_running"))),
    "features_sequence": (("data/embeddings/engineered.parquet", _SPLIT, _LABELS, _POSTS),
                          ("data/features/sequence.parquet", "data/neighbours/sequence_ids.parquet")),
    "train_lgbm": ((_SPLIT, _LABELS), ("data/preds/lgbm.parquet", "data/models/lgbm.txt", "reports/train_lgbm.json")),
    "embed_minilm": (("data/tables/text.parquet", _POSTS),
                     ("data/embeddings/minilm.parquet", "data/embeddings/minilm", "reports/embed_minilm.json")),
    "embed_clip": (("data/tables/images.parquet", "data/tables/text.parquet", _POSTS),
                   ("data/embeddings/clip", "reports/embed_clip.json")),
    "finetune_wrcr": (("data/embeddings/minilm.parquet", "data/features/image_stats.parquet", _SPLIT, _LABELS),
                      ("data/finetuned/wrcr.parquet", "data/models/finetune_wrcr.joblib", "reports/finetune_wrcr.json")),
    "features_protoclip": ((_SPLIT, _LABELS, "data/features/baseline.parquet", "data/features/image_stats.parquet",
                            "data/embeddings/minilm.parquet"),
                           ("data/finetuned/protoclip.parquet", "data/models/protoclip.joblib",
                            "reports/features_protoclip.json")),
    "train_stack": ((_SPLIT, _LABELS), ("data/preds/stack.parquet", "data/models/stack.joblib",
                                        "reports/train_stack.json")),
    "evaluate": (("data/preds/lgbm.parquet", "data/preds/stack.parquet", _POSTS, "reports/ingest_report.json", ORACLE),
                 ("reports/submission.json", "reports/evaluation.json", "reports/submission_report.json",
                  "reports/metrics", "reports/plots/pred_vs_true.csv", "reports/plots/mae_by_bin.csv")),
    "catalog": ((_TABLES, _SPLIT, "data/features", "data/preds/lgbm.parquet", "data/preds/stack.parquet",
                 "data/embeddings/engineered.parquet", "data/neighbours/sequence_ids.parquet", "reports/metrics",
                 SMPD),
                ("data/catalog.duckdb",)),
}
PERSIST = frozenset({"data/embeddings/minilm", "data/embeddings/clip"})


@dataclass(frozen=True)
class StageIO:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def model_tables_of(stage: str, params: dict) -> set[str]:
    """The tables model stage ``stage`` (train_lgbm or train_stack) reads under ``params``."""
    from models.train_gbdt import TrainConfig
    from models.train_stack import StackConfig

    if stage == "train_lgbm":
        return set(config_from_dict(TrainConfig, stage, params.get(stage)).feature_groups)
    return set(config_from_dict(StackConfig, stage, params.get(stage)).all_groups)


def _param_inputs(name: str, params: dict) -> tuple[str, ...]:
    """Tables a stage reads because its params name them (model feature groups, finetune_wrcr's
    encoders and tabular groups)."""
    if name in ("train_lgbm", "train_stack"):
        names = model_tables_of(name, params)
    elif name == "finetune_wrcr":
        section = params.get(name) or {}
        names = {f"embed_{e.replace('-', '_')}" for e in section.get("encoders", ())} | set(section.get("tabular", ()))
        names &= {t.name for t in list_tables()}  # tabular encoders (image_stats) name no table
    else:
        return ()
    return tuple(sorted(get_table(t).path for t in names))


def tables_at(paths: tuple[str, ...]) -> set[str]:
    """Names of the registered tables stored at these root-relative paths."""
    return {t.name for t in list_tables() if t.path in paths}


def stage_io(name: str, params: dict) -> StageIO:
    """The inputs and outputs of ``name`` under ``params`` (root-relative, as in dvc.yaml)."""
    inputs, outputs = _IO[name]
    extra = tuple(p for p in _param_inputs(name, params) if p not in inputs)
    return StageIO(inputs=inputs + extra, outputs=outputs)


def resolve(rel: str, paths: Paths) -> Path:
    """Where a declared path lies for this run (the SMPD dir and its oracle may be anywhere)."""
    if rel == SMPD:
        return paths.smpd_dir
    if rel == ORACLE:
        return paths.oracle
    return Path(paths.root) / rel


def overlaps(a: str, b: str) -> bool:
    """Whether two root-relative paths name the same file or one lies inside the other."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")
