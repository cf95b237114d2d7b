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

What is fitted is a ``TextModel`` (the stage saves it with joblib); ``text_rows`` turns any posts'
text rows and a model into feature rows, one row at a time, so a new post's row needs the loaded
model and its own title, tags and media type only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

from featurestore.paths import Paths

HASHTAG = r"#\w+"
MENTION = r"@\w+"
URL = r"(?i)(?:https?://|www\.)\S+"


@dataclass(frozen=True)
class TextConfig:
    svd_components: int = 32
    min_df: int = 3
    max_features: int = 50_000
    seed: int = 42


def text_inputs(text: pl.DataFrame | pa.Table, posts: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """What ``text_rows`` reads, from ingest's ``text`` (pid, title, alltags, mediatype) and ``posts``
    (pid, postdate) rows: pid, postdate, title, tags, mediatype of the posts in both, sorted by pid."""
    if isinstance(text, pa.Table) and isinstance(posts, pa.Table) and _same_sorted_pids(text, posts):
        return pl.DataFrame({"pid": text["pid"], "postdate": posts["postdate"],  # a few new posts: no join
                             "title": pc.fill_null(text["title"], ""), "tags": pc.fill_null(text["alltags"], ""),
                             "mediatype": text["mediatype"]})
    text, posts = (pl.from_arrow(t) if isinstance(t, pa.Table) else t for t in (text, posts))
    return (text.select("pid", "title", pl.col("alltags").alias("tags"), "mediatype")
            .join(posts.select("pid", "postdate"), on="pid", how="inner")
            .select("pid", "postdate", pl.col("title").fill_null(""), pl.col("tags").fill_null(""), "mediatype")
            .sort("pid"))


def _same_sorted_pids(a: pa.Table, b: pa.Table) -> bool:
    """Whether ``a`` and ``b`` hold the same distinct pids in the same ascending order (the join of
    ``text_inputs`` is then the rows side by side)."""
    pid = a["pid"]
    if pid.null_count or not pid.equals(b["pid"]):
        return False
    values = pid.to_numpy()
    return bool((values[1:] > values[:-1]).all())


def _read(root: Path) -> pl.DataFrame:
    """``text_inputs`` of every post with its split, sorted by pid."""
    paths = Paths(root=root)
    inputs = text_inputs(pl.read_parquet(paths.table("text")), pl.read_parquet(paths.table("posts")))
    split = pl.read_parquet(paths.table("split"), columns=["pid", "split"])
    return inputs.join(split, on="pid", how="inner").sort("pid")


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


@dataclass(frozen=True)
class TextModel:
    """The fitted part of the text group: TF-IDF vocabulary and IDF weights, and the SVD basis."""

    tfidf: TfidfVectorizer
    svd: TruncatedSVD

    def topics(self, docs: list[str]) -> np.ndarray:
        """N documents -> (N, k) ``text_svd_*`` values: float64 holding float32 values.

        ``svd.transform(tfidf.transform(docs))`` operation by operation (tests compare the two) without
        scikit-learn's input validation, which costs several times the arithmetic on a served post's
        one document: term counts, ``1 + log`` (sublinear tf), times the IDF weights, rows scaled to
        unit L2 norm, then the product with the SVD basis.
        """
        tfidf = self.tfidf
        if not (tfidf.sublinear_tf and tfidf.norm == "l2" and tfidf.use_idf):
            raise ValueError("TextModel.topics: the TF-IDF must be sublinear, IDF-weighted and L2-normalised "
                             "(fit_text_model's settings)")
        X = CountVectorizer.transform(tfidf, docs).astype(np.float64)  # (N, V) csr
        np.log(X.data, X.data)
        X.data += 1.0
        X.data *= tfidf.idf_[X.indices]
        inplace_csr_row_normalize_l2(X)
        return np.asarray(X @ self.svd.components_.T).astype(np.float32).astype(np.float64)


def fit_text_model(docs_train: list[str], cfg: TextConfig) -> TextModel:
    """Fit TF-IDF and SVD on training documents only."""
    min_df = min(cfg.min_df, max(1, len(docs_train) // 10))
    tfidf = TfidfVectorizer(min_df=min_df, max_features=cfg.max_features, sublinear_tf=True,
                            token_pattern=r"(?u)\b\w\w+\b", dtype=np.float64)
    X = tfidf.fit_transform(docs_train)  # (n_train, V) float64: ARPACK then iterates in float64
    k = max(1, min(cfg.svd_components, X.shape[1] - 1, X.shape[0] - 1))
    solver = "arpack" if k < min(X.shape) else "randomized"  # ARPACK needs k < min(n, V): only tiny inputs miss
    svd = TruncatedSVD(n_components=k, algorithm=solver, random_state=cfg.seed, n_iter=7).fit(X)
    svd.components_ = fixed_signs(svd.components_)
    return TextModel(tfidf, svd)


def fixed_signs(components: np.ndarray) -> np.ndarray:
    """(k, V) components, each flipped so that its largest-|loading| entry is positive.

    An SVD determines each component only up to sign, and which sign a solver returns can
    depend on the BLAS's rounding; this convention (scikit-learn's ``svd_flip`` on V) does not.
    """
    top = np.abs(components).argmax(axis=1)  # (k,)
    sign = np.where(components[np.arange(len(components)), top] < 0, -1.0, 1.0)
    return components * sign[:, None]


def text_rows(df: pl.DataFrame | pa.Table, model: TextModel) -> pa.Table:
    """Feature rows of the posts in ``df`` (same order): pid, postdate, statistics, ``text_svd_<i>``.

    df: ``text_inputs``'s columns pid, postdate, title, tags, mediatype; null texts count as empty.
    Each row depends on its own post and ``model`` only.
    """
    df = (pl.from_arrow(df) if isinstance(df, pa.Table) else df).with_columns(pl.col("title").fill_null(""),
                                                                              pl.col("tags").fill_null(""))
    Zt = np.ascontiguousarray(model.topics(_documents(df)).T)  # (k, N): one contiguous column each
    stats = text_statistics(df).to_arrow()
    return pa.table({"pid": df["pid"].to_arrow(), "postdate": df["postdate"].to_arrow(),
                     **dict(zip(stats.column_names, stats.columns)),
                     **{f"text_svd_{i}": z for i, z in enumerate(Zt)}})


def fit_on_train(df: pl.DataFrame, cfg: TextConfig) -> TextModel:
    """The model of the rows of ``df`` (``_read``'s columns) whose split is train."""
    return fit_text_model([d for d, t in zip(_documents(df), (df["split"] == "train").to_numpy()) if t], cfg)


def build_text(paths, cfg: TextConfig) -> tuple[pa.Table, TextModel]:
    """The ``features_text`` table of every post (sorted by pid) and the model fitted on the train split."""
    df = _read(paths.root)
    model = fit_on_train(df, cfg)
    return text_rows(df, model), model


def text_features(paths, cfg: TextConfig) -> pa.Table:
    """pid, postdate, statistics and ``text_svd_<i>`` for every post (sorted by pid)."""
    return build_text(paths, cfg)[0]
