"""Feature groups, declared as data: name, output table, how it is built, which params it reads.

A group is built either by one SQL query in ``sql/`` over the catalog views (with its config
fields bound as ``$parameters``) or by a Python builder ``build(root, config) -> pa.Table``.
A SQL group's fitted state (vocabularies, running statistics) is a named relation computed by its
own query ``sql/fitted_<name>.sql`` before the group's query reads it; the group's stage stores it
as ``data/fitted/<name>.parquet`` for serving (``featurestore.sql_online``).
Every group's table has ``pid`` and ``postdate`` and is sorted by ``pid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.catalog import open_tables
from featurestore.config import config_from_dict
from featurestore.embeddings import embedding_columns, embedding_prefix
from featurestore.named_registry import Registry
from featurestore.table_specs import get_table
from featurestore.features_sequence import SequenceConfig, sequence_features
from featurestore.features_text import TextConfig, text_features
from featurestore.image_stats import ImageStatsConfig, image_stats_features
from featurestore.sql_groups import fit_relations, query_group


@dataclass(frozen=True)
class NoConfig:
    pass


@dataclass(frozen=True)
class HistoryConfig:
    half_life_days: float = 30.0  # decay of the decayed means: weight 2^(-age / half-life)
    smoothing: float = 20.0       # pseudo-count of the smoothed category means

    def __post_init__(self) -> None:
        if self.half_life_days <= 0 or self.smoothing < 0:
            raise ValueError("history: half_life_days must be > 0 and smoothing >= 0")


@dataclass(frozen=True, kw_only=True)
class FeatureGroup:
    name: str
    table: str
    description: str
    sql: str | None = None
    build: Callable[[object, object], pa.Table] | None = None  # (paths, config) -> table
    config: type = NoConfig
    params_section: str | None = None
    fitted: tuple[str, ...] = ()  # relations the SQL reads, each computed by sql/fitted_<name>.sql first

    def make_config(self, params: dict) -> object:
        section = self.params_section
        return config_from_dict(self.config, section or self.name, params.get(section) if section else None)


_GROUPS: Registry[FeatureGroup] = Registry("feature group")
register_group = _GROUPS.register
get_group = _GROUPS.get


def list_groups() -> list[FeatureGroup]:
    return list(_GROUPS)


def run_sql_group(root: Path, group: FeatureGroup, config: object) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Run a SQL group over the tables under ``root``: its fitted relations (by name), then its
    query with them registered and the config fields bound as parameters."""
    con = open_tables(root)
    try:
        fitted = fit_relations(con, group.fitted)
        return query_group(con, group.sql, config, fitted), fitted
    finally:
        con.close()


def build_group(name: str, paths, params: dict) -> pa.Table:
    """Build one group's table from the ingested tables and split of a run (``featurestore.paths.Paths``)."""
    return build_group_with_fitted(name, paths, params)[0]


def build_group_with_fitted(name: str, paths, params: dict) -> tuple[pa.Table, dict[str, pa.Table]]:
    """``build_group``'s table and the group's fitted relations by name (``{}`` for Python groups).

    New posts do not go through here: ``pipelines.online_features`` computes their rows from the
    stored fitted state and the rows they touch, with the same SQL and transforms.
    """
    group = get_group(name)
    cfg = group.make_config(params)
    fitted: dict[str, pa.Table] = {}
    if group.sql:
        table, fitted = run_sql_group(paths.root, group, cfg)
    else:
        table = group.build(paths, cfg)
    if table.column_names[:2] != ["pid", "postdate"]:
        raise ValueError(f"feature group {name}: first columns must be pid, postdate; got {table.column_names[:2]}")
    return table, fitted


def group_of_table(table: str) -> FeatureGroup:
    """The feature group that writes table ``table`` (e.g. ``features_text`` -> group ``text``)."""
    for g in list_groups():
        if g.table == table:
            return g
    raise KeyError(f"no feature group writes table {table!r}; groups: {sorted(g.table for g in list_groups())}")


def read_model_inputs(paths, name: str) -> pa.Table:
    """The stored table ``name`` as model inputs: a feature group as is; an embedding table
    (``kind == "embedding"``, e.g. ``embed_minilm``) with one float32 column per dimension,
    named ``emb_<encoder>_<j>``."""
    table = pq.read_table(paths.table(name))
    return embedding_columns(table, embedding_prefix(name)) if get_table(name).kind == "embedding" else table


def feature_columns(table: pa.Table) -> list[str]:
    """Model input columns of a feature table (everything but the key and the timestamp)."""
    return [c for c in table.column_names if c not in ("pid", "postdate")]


register_group(FeatureGroup(name="baseline", table="features_baseline", sql="features_baseline",
                            fitted=("vocab_category", "vocab_subcategory", "vocab_concept"),
                            description="minimal set: user metadata, posting time, category codes, text lengths"))
register_group(FeatureGroup(name="user", table="features_user", sql="features_user",
                            description="profile fields at post time and the user's activity so far"))
register_group(FeatureGroup(name="crawled", table="features_crawled", sql="features_crawled",
                            description="crawled user statistics of the post's Pathalias (later snapshot, FORMAT.md 10)"))
register_group(FeatureGroup(name="ids", table="features_ids", sql="features_ids", fitted=("vocab_user",),
                            description="the post's user as a categorical code (train vocabulary; unseen users null)"))
register_group(FeatureGroup(name="temporal", table="features_temporal", sql="features_temporal",
                            description="local posting time, gaps to first photo and previous post, geotag"))
register_group(FeatureGroup(name="text", table="features_text", build=text_features, config=TextConfig,
                            params_section="features_text",
                            description="title/tag counts and flags; TF-IDF + SVD of title and tags fitted on train"))
register_group(FeatureGroup(name="image_stats", table="features_image_stats", build=image_stats_features,
                            config=ImageStatsConfig, params_section="features_image_stats",
                            description="engineered image statistics: quality, colour, composition, faces"))
register_group(FeatureGroup(name="history", table="features_history", sql="features_history",
                            fitted=("history_running",),
                            config=HistoryConfig, params_section="features_history",
                            description="point-in-time label statistics of the user, user x category and categories"))
register_group(FeatureGroup(name="sequence", table="features_sequence", build=sequence_features, config=SequenceConfig,
                            params_section="features_sequence",
                            description="visible-label and similarity statistics of the k most similar strictly-earlier posts"))
