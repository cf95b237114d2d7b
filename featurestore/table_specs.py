"""Every table of the feature store, declared as data: name, file, key, timestamp, version, stage.

Stages write the files; ``catalog.build_catalog`` turns this registry into DuckDB views and
the ``feature_registry`` table. A new table or feature group is one more ``TableSpec`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurestore.named_registry import Registry


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """One Parquet table of the store. ``path`` is relative to the work root."""

    name: str
    path: str
    stage: str
    key: tuple[str, ...] = ("pid",)
    timestamp: str | None = None
    version: int = 1
    kind: str = "table"  # "table" (raw/ingested), "feature_group", "embedding", "prediction"
    encoder: str | None = None  # embedding tables of a frozen per-post encoder: its registry name
    description: str = ""


_TABLES: Registry[TableSpec] = Registry("table")
register_table = _TABLES.register
get_table = _TABLES.get


def list_tables(kind: str | None = None) -> list[TableSpec]:
    return [s for s in _TABLES if kind is None or s.kind == kind]


_INGEST = {
    "posts": "one row per post: pid, uid, postdate (epoch s), source split (train/test file), row in file",
    "labels": "popularity label of each labelled (train-file) post",
    "categories": "category / subcategory / concept of each post",
    "text": "title, space-separated tags and media type",
    "temporal": "post date, latitude/longitude (null without geotag), geo accuracy",
    "additional": "Pathalias (null for 'None'), Ispublic, Mediastatus",
    "users": "official user-profile fields per post, typed (timezone offset in minutes)",
    "images": "relative image path, Flickr URL (2019 release), exists flag",
}
for _name, _desc in _INGEST.items():
    register_table(TableSpec(name=_name, path=f"data/tables/{_name}.parquet", stage="ingest",
                             timestamp="postdate" if _name in ("posts", "temporal") else None, description=_desc))
register_table(TableSpec(name="crawled_users", path="data/tables/crawled_users.parquet", stage="ingest",
                         key=("pathalias",), description="unofficial crawled user statistics (FORMAT.md 10), one row "
                                                         "per Pathalias; crawl_failed: all-zero row, stats null"))
register_table(TableSpec(name="split", path="data/split.parquet", stage="split", timestamp="postdate",
                         description="chronological train/val/test/predict assignment and label visibility"))
_GROUPS = {
    "baseline": "minimal feature set: user metadata, posting time, category codes, text lengths",
    "user": "profile fields at post time and the user's activity so far (point in time)",
    "temporal": "local posting time, gaps to first photo and previous post, geotag",
    "text": "title/tag counts and flags, TF-IDF + SVD of title and tags (fitted on train)",
    "image_stats": "engineered image statistics (brightness, colourfulness, sharpness, composition, ...)",
    "crawled": "crawled user statistics of the post's Pathalias (a later snapshot, not point in time)",
    "ids": "the post's user as a categorical code, vocabulary of the train split (unseen users null)",
    "history": "point-in-time statistics of visible earlier labels: user, user x category, categories",
    "sequence": "visible-label and similarity statistics of the k most similar strictly-earlier posts (FAISS)",
}
for _name, _desc in _GROUPS.items():
    register_table(TableSpec(name=f"features_{_name}", path=f"data/features/{_name}.parquet",
                             stage=f"features_{_name}", kind="feature_group", timestamp="postdate", description=_desc))
register_table(TableSpec(name="embed_engineered", path="data/embeddings/engineered.parquet", stage="embed_engineered",
                         kind="embedding", timestamp="postdate",
                         description="train-standardised text SVD + image stats + one-hot category, L2-normalised"))
register_table(TableSpec(name="embed_minilm", path="data/embeddings/minilm.parquet", stage="embed_minilm",
                         kind="embedding", timestamp="postdate", encoder="minilm",
                         description="all-MiniLM-L6-v2 embedding (384, L2-normalised) of the post's title and tags"))
for _tower in ("image", "text"):
    register_table(TableSpec(name=f"embed_clip_{_tower}", path=f"data/embeddings/clip/{_tower}.parquet",
                             stage="embed_clip", kind="embedding", timestamp="postdate",
                             description=f"open_clip ViT-B-32 {_tower} embedding (512, L2-normalised; needs "
                                         "embed_clip.weights)"))
register_table(TableSpec(name="features_finetuned_wrcr", path="data/finetuned/wrcr.parquet",
                         stage="finetune_wrcr", kind="feature_group", timestamp="postdate",
                         description="64-d penultimate layer ft_* of the WRCR head on frozen MiniLM + image stats "
                                     "(trained on train only)"))
register_table(TableSpec(name="features_protoclip", path="data/finetuned/protoclip.parquet",
                         stage="features_protoclip", kind="feature_group", timestamp="postdate",
                         description="prototype-CLIP head features pclip_* over image stats + MiniLM + subcategory "
                                     "(train only, cross-fitted)"))
register_table(TableSpec(name="sequence_ids", path="data/neighbours/sequence_ids.parquet", stage="features_sequence",
                         timestamp="postdate", description="top-l strictly-earlier neighbour pids/similarities; not model inputs"))
register_table(TableSpec(name="predictions", path="data/preds/lgbm.parquet", stage="train_lgbm", kind="prediction",
                         description="LightGBM prediction for every post, with its split"))
register_table(TableSpec(name="predictions_stack", path="data/preds/stack.parquet", stage="train_stack",
                         kind="prediction", description="stacked-ensemble prediction (pred) and each base learner's "
                                                        "(pred_<learner>) for every post"))
