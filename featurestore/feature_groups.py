"""Feature groups, declared as data: name, output table, how it is built, which params it reads.

A group is built either by one SQL query in ``sql/`` over the catalog views (with its config
fields bound as ``$parameters``) or by a Python builder ``build(root, config) -> pa.Table``.
Every group's table has ``pid`` and ``postdate`` and is sorted by ``pid``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.catalog import load_sql, open_tables
from featurestore.config import config_from_dict
from featurestore.embeddings import embedding_columns, embedding_prefix
from featurestore.named_registry import Registry
from featurestore.table_specs import get_table
from featurestore.features_sequence import SequenceConfig, sequence_features
from featurestore.features_text import TextConfig, text_features
from featurestore.image_stats import ImageStatsConfig, image_stats_features


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
    per_post: bool = False  # each row depends on its own post only (new posts need no recomputation of others)
    subset: bool = False    # build(paths, config, only=pids) computes just those rows (same values as a full build)

    def make_config(self, params: dict) -> object:
        section = self.params_section
        return config_from_dict(self.config, section or self.name, params.get(section) if section else None)


_GROUPS: Registry[FeatureGroup] = Registry("feature group")
register_group = _GROUPS.register
get_group = _GROUPS.get


def list_groups() -> list[FeatureGroup]:
    return list(_GROUPS)


def run_sql_group(root: Path, sql_name: str, config: object) -> pa.Table:
    """Run ``sql/<sql_name>.sql`` over the tables under ``root``; config fields are bound parameters."""
    con = open_tables(root)
    try:
        bound = {k: v for k, v in asdict(config).items()}
        return con.sql(load_sql(sql_name), params=bound or None).to_arrow_table()
    finally:
        con.close()


def build_group(name: str, paths, params: dict, only=None) -> pa.Table:
    """Build one group's table from the ingested tables and split of a run (``featurestore.paths.Paths``).

    ``only``: pids whose rows are wanted (``smpp predict``); groups marked ``subset`` compute just
    those, the others are built whole and filtered. Either way the rows equal a full build's.
    """
    group = get_group(name)
    cfg = group.make_config(params)
    if only is not None and group.subset:
        table = group.build(paths, cfg, only=only)
    else:
        table = run_sql_group(paths.root, group.sql, cfg) if group.sql else group.build(paths, cfg)
        if only is not None:
            table = table.filter(pc.is_in(table["pid"], value_set=pa.array(only, pa.int64())))
    if table.column_names[:2] != ["pid", "postdate"]:
        raise ValueError(f"feature group {name}: first columns must be pid, postdate; got {table.column_names[:2]}")
    return table


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
                            description="minimal set: user metadata, posting time, category codes, text lengths"))
register_group(FeatureGroup(name="user", table="features_user", sql="features_user",
                            description="profile fields at post time and the user's activity so far"))
register_group(FeatureGroup(name="crawled", table="features_crawled", sql="features_crawled",
                            description="crawled user statistics of the post's Pathalias (later snapshot, FORMAT.md 10)"))
register_group(FeatureGroup(name="ids", table="features_ids", sql="features_ids",
                            description="the post's user as a categorical code (train vocabulary; unseen users null)"))
register_group(FeatureGroup(name="temporal", table="features_temporal", sql="features_temporal",
                            description="local posting time, gaps to first photo and previous post, geotag"))
register_group(FeatureGroup(name="text", table="features_text", build=text_features, config=TextConfig,
                            params_section="features_text", subset=True,
                            description="title/tag counts and flags; TF-IDF + SVD of title and tags fitted on train"))
register_group(FeatureGroup(name="image_stats", table="features_image_stats", build=image_stats_features,
                            config=ImageStatsConfig, params_section="features_image_stats", per_post=True,
                            description="engineered image statistics: quality, colour, composition, faces"))
register_group(FeatureGroup(name="history", table="features_history", sql="features_history",
                            config=HistoryConfig, params_section="features_history",
                            description="point-in-time label statistics of the user, user x category and categories"))
register_group(FeatureGroup(name="sequence", table="features_sequence", build=sequence_features, config=SequenceConfig,
                            params_section="features_sequence",
                            description="visible-label and similarity statistics of the k most similar strictly-earlier posts"))
