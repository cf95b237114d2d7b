"""Feature group ``text``: title/tag statistics and a TF-IDF + truncated-SVD topic embedding.

The TF-IDF vocabulary, IDF weights and the SVD basis are fitted on the train split's posts
only, then applied to every post (a test changes val/test texts and checks that the fitted
transform and the train rows do not move).

The SVD is made as CPU-independent as floating point allows (README, Reproducibility): TF-IDF
in float64, ARPACK (Lanczos iterated to machine precision from a seeded start vector) instead
of the randomized solver, whose tail components are not converged after a few power
iterations and so amplify the BLAS's rounding, a fixed sign per component, and the stored
``text_svd_*`` values rounded to float32 (what the model matrix holds anyway), so that
differences of a few float64 ulps between BLAS kernels vanish from the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from featurestore.catalog import open_tables

HASHTAG = r"#\w+"
MENTION = r"@\w+"
URL = r"(?i)(?:https?://|www\.)\S+"


@dataclass(frozen=True)
class TextConfig:
    svd_components: int = 32
    min_df: int = 3
    max_features: int = 50_000
    seed: int = 42


def _read(root: Path) -> pl.DataFrame:
    con = open_tables(root)
    try:
        return con.sql("SELECT t.pid, p.postdate, coalesce(t.title, '') AS title, coalesce(t.alltags, '') AS tags, "
                       "t.mediatype, s.split FROM text t JOIN posts p USING (pid) JOIN split s USING (pid) "
                       "ORDER BY t.pid").pl()
    finally:
        con.close()


def text_statistics(df: pl.DataFrame) -> pl.DataFrame:
    """Counts and flags from title and tags; df needs columns title, tags, mediatype."""
    title, tags = pl.col("title"), pl.col("tags")
    tag_list = tags.str.strip_chars().str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
    return df.select(
        text_title_chars=title.str.len_chars().cast(pl.Float64),
        text_title_words=title.str.strip_chars().str.split(" ").list.eval(pl.element().filter(pl.element() != ""))
        .list.len().cast(pl.Float64),
        text_title_empty=(title.str.strip_chars() == "").cast(pl.Float64),
        text_title_hashtags=title.str.count_matches(HASHTAG).cast(pl.Float64),
        text_title_mentions=title.str.count_matches(MENTION).cast(pl.Float64),
        text_title_urls=title.str.count_matches(URL).cast(pl.Float64),
        text_title_non_ascii=title.str.count_matches(r"[^\x00-\x7F]").cast(pl.Float64),
        text_title_upper_share=(title.str.count_matches(r"[A-Z]") / title.str.len_chars().clip(1, None)),
        text_title_digits=title.str.count_matches(r"[0-9]").cast(pl.Float64),
        text_tag_count=tag_list.list.len().cast(pl.Float64),
        text_tags_chars=tags.str.len_chars().cast(pl.Float64),
        text_machine_tags=tag_list.list.eval(pl.element().str.contains(r"^[\w.-]+:[\w.-]+=")).list.sum()
        .cast(pl.Float64),
        text_is_video=(pl.col("mediatype") == "video").cast(pl.Float64).fill_null(0.0),
    )


def _documents(df: pl.DataFrame) -> list[str]:
    # machine tags (uploaded:by=..., instagram:photo=<id>) are ids, not words: drop them from the topic model
    tags = df["tags"].str.replace_all(r"\S+:\S+=\S*", "")
    return (df["title"] + " " + tags).to_list()


def fit_text_model(docs_train: list[str], cfg: TextConfig) -> tuple[TfidfVectorizer, TruncatedSVD]:
    """Fit TF-IDF and SVD on training documents only."""
    min_df = min(cfg.min_df, max(1, len(docs_train) // 10))
    tfidf = TfidfVectorizer(min_df=min_df, max_features=cfg.max_features, sublinear_tf=True,
                            token_pattern=r"(?u)\b\w\w+\b", dtype=np.float64)
    X = tfidf.fit_transform(docs_train)  # (n_train, V) float64: ARPACK then iterates in float64
    k = max(1, min(cfg.svd_components, X.shape[1] - 1, X.shape[0] - 1))
    solver = "arpack" if k < min(X.shape) else "randomized"  # ARPACK needs k < min(n, V): only tiny inputs miss
    svd = TruncatedSVD(n_components=k, algorithm=solver, random_state=cfg.seed, n_iter=7).fit(X)
    svd.components_ = fixed_signs(svd.components_)
    return tfidf, svd


def fixed_signs(components: np.ndarray) -> np.ndarray:
    """(k, V) components, each flipped so that its largest-|loading| entry is positive.

    An SVD determines each component only up to sign, and which sign a solver returns can
    depend on the BLAS's rounding; this convention (scikit-learn's ``svd_flip`` on V) does not.
    """
    top = np.abs(components).argmax(axis=1)  # (k,)
    sign = np.where(components[np.arange(len(components)), top] < 0, -1.0, 1.0)
    return components * sign[:, None]


def text_features(paths, cfg: TextConfig, only=None) -> pa.Table:
    """pid, postdate, statistics and ``text_svd_<i>`` for every post (sorted by pid).

    ``only``: pids to compute rows for (``smpp predict``); the model is still fitted on every
    train post, so those rows equal a full build's.
    """
    df = _read(paths.root)
    docs = _documents(df)
    train = (df["split"] == "train").to_numpy()
    tfidf, svd = fit_text_model([d for d, t in zip(docs, train) if t], cfg)
    if only is not None:
        keep = np.isin(df["pid"].to_numpy(), np.asarray(only, np.int64))
        df, docs = df.filter(pl.Series(keep)), [d for d, k in zip(docs, keep) if k]
    Z = svd.transform(tfidf.transform(docs)).astype(np.float32).astype(np.float64)  # (N, k), float32 values
    svd_cols = {f"text_svd_{i}": Z[:, i] for i in range(cfg.svd_components) if i < Z.shape[1]}
    out = pl.concat([df.select("pid", "postdate"), text_statistics(df), pl.DataFrame(svd_cols)], how="horizontal")
    return out.to_arrow()
